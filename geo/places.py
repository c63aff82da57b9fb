"""Finding location expressions in a post's text: the gazetteer's names, and patterns.

Two passes, cheapest first, as in `overheard.classify.prefilter`:

1. `scan`: an Aho–Corasick automaton over the lowercased text finds every spelling
   the gazetteer knows (street variants, place and neighbourhood names) on word
   boundaries. Most posts stop here. A bare name (a street spelling without its
   type, "Fleet", "Linwood"; a one-word place, "Target") is kept only when it is
   written with a capital letter, or, for a street, when &, "and", / or @ joins it to
   another word ("fleet and ponca": the `lower_crossing` rule then decides). At most
   `MAX_CANDIDATES` hits are kept per post, so a text with thousands of names costs no
   more than that.
2. `find`: the stretches of text around the kept hits (four words before, for
   "2300 block of", "corner of", a house number; three after) are tokenized with
   spaCy and a PhraseMatcher (attr LOWER, with "St." / "E." spellings too) gives
   token-exact spans; the longest wins where spans overlap. Then token patterns:

   - address: a house number ("101", "12A") right before a street;
   - block: "NNNN block of" (or "blk of") before a street;
   - intersection: street, then "&", "and", "/", "@", "at", "near", "by" or "off",
     then a street ("Fleet & Ponca", "corner of Fleet and Ponca", "on Eastern Ave
     near Linwood"); after "near", "by" or "off", a bare name that is also a place
     is the place ("on Broadway near Patterson Park");
   - street: a street spelling with its type ("Eastern Ave"); a bare one only after
     "on", "along", "down", "up", "onto" or "off";
   - place / neighbourhood: a place or neighbourhood name;
   - city: one of the city's own names (`city_names`, e.g. the profile's).

   A directional alone ("East") is never a street name. A bare street name followed
   by a street type the gazetteer does not have for it ("Wise Ave" when only Wise
   Court exists) is another street, and not a mention; so is one followed by a number
   ("Interstate 695", "Route 40": a numbered road) or written as a possessive ("Fell's",
   as people call Fells Point; "Towson's"), or by a capitalised word and a street type
   ("MAPLE SHADE DR": a longer name the gazetteer lacks). A street name with its type
   after a one-letter directional the gazetteer does not hold it with ("E Patapsco Ave"
   when it knows only the county's Patapsco Avenue) is that missing street, not a
   mention; so is a spelling that names its street only without the directional the
   street has ("Point Rd" for North Point Road) after a capitalised word that is no
   name the gazetteer knows ("Hawkins Point Rd"; but "Fells Point Pratt St"). Nor is
   a place or neighbourhood name followed by a street type ("Eagle St", "Riverside
   Ave"): that is a street the gazetteer lacks, which may lie far from the place of
   that name. A place named after a crossing of two streets the gazetteer has (a
   transit stop, "S Central Ave & Bank St") is not looked for as a place: the words
   are read as the crossing they name.

   Which reading a name gets when it could be several is decided by the rules in
   `_RULES`, and each mention says which rule decided it (`Mention.rule`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import ahocorasick
import spacy
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span, Token
from spacy.util import filter_spans

from overheard.geo.gazetteer import Gazetteer
from overheard.geo.normalise import (
    DIRECTIONAL_ABBREVIATIONS,
    DIRECTIONALS,
    SUFFIX_ABBREVIATIONS,
    SUFFIXES,
    place_key,
    street_key,
)

#: Gazetteer hits kept per post by the scan; the rest of a post is not looked at.
MAX_CANDIDATES = 200

_STREET, _PLACE, _HOOD, _CITY = 1, 2, 4, 8
_HOUSE_NUMBER = re.compile(r"^\d{1,5}[a-z]?$", re.IGNORECASE)
_STRONG = frozenset({"&", "and", "/", "@", "at"})
_WEAK = frozenset({"near", "by", "off"})
_ON = frozenset({"on", "along", "down", "up", "onto", "off"})
_SPOT = frozenset({"at", "outside", "inside", "near", "behind", "by", "of", "front"})
_DOTTABLE = DIRECTIONAL_ABBREVIATIONS | SUFFIX_ABBREVIATIONS | {"st"}
#: Directionals written as one letter: before a street name, part of it.
_LETTERS = frozenset({"n", "s", "e", "w"})
_OPPOSITE = {"n": "s", "s": "n", "e": "w", "w": "e"}
_POSSESSIVE = frozenset({"'s", "’s", "'", "’"})
_CROSSING_NAME = re.compile(r"^(.+?) (?:&|and|@|/|at) (.+)$")
_JOIN_AFTER = re.compile(r"(?:\s*[&/@]\s*|\s+and\s+)\w")
_JOIN_BEFORE = re.compile(r"\w(?:\s*[&/@]\s*|\s+and\s+)$")
#: Connectors that join lower-case bare street names into a crossing.
_LOWER_JOIN = frozenset({"&", "and", "/", "@"})
#: Words that make what follows a common noun ("the market and water bills").
_DETERMINERS = frozenset(
    [
        "the",
        "a",
        "an",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "its",
        "this",
        "that",
        "these",
        "those",
        "some",
        "any",
        "no",
    ]
)

_RULES = {
    "typed": "a street name written with its type (Ave, St, …) is a street",
    "number": "a house number before a street name makes an address",
    "block": "'NNNN block of' before a street name makes a block",
    "crossing": "two street names joined by &, and, /, @, at, near, by or off make an intersection",
    "lower_crossing": (
        "a street name in lower case without its type is a street only as one side of a "
        "crossing (joined by &, and, / or @, not after 'the', 'a', 'my', …) of two streets "
        "that meet"
    ),
    "form": "a house number, a name and a street type look like an address",
    "on": "a bare street name after 'on', 'along', 'down', 'up', 'onto' or 'off' is a street",
    "city": (
        "the city's own name is the city, not a street of that name, unless written with "
        "a street type or after a house number"
    ),
    "bare_place": (
        "a bare street name that is also a place or neighbourhood name is the place or "
        "neighbourhood: "
        "a street is written with its type unless a house number or a crossing street "
        "says otherwise"
    ),
    "place": "a place name",
    "neighbourhood": "a neighbourhood name",
    "spot": (
        "a name of both a place and a neighbourhood after 'at', 'outside', 'near', … "
        "is the place, otherwise the neighbourhood"
    ),
}


@dataclass(frozen=True)
class Part:
    """One gazetteer name in the text: [start, end) characters, the spelling found."""

    spelling: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Mention:
    """A location expression: kind is address, block, intersection, street, place,
    neighbourhood or city; `parts` are the names in it (two streets for an intersection);
    `number` the house or block number; `rule` says which rule decided the reading."""

    kind: str
    start: int
    end: int
    text: str
    parts: tuple[Part, ...]
    rule: str
    number: int | None = None

    @property
    def explanation(self) -> str:
        return _RULES[self.rule]


@dataclass(frozen=True)
class Found:
    """What `search` found in one text, and how much of it was looked at."""

    mentions: list[Mention]
    #: Gazetteer hits kept by the scan (at most MAX_CANDIDATES).
    candidates: int
    #: True when the scan stopped at MAX_CANDIDATES.
    truncated: bool = False
    hits: list[tuple[int, int, str]] = field(default_factory=list, repr=False)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


class PlaceFinder:
    """Finds location expressions built from one gazetteer's names."""

    def __init__(
        self, gazetteer: Gazetteer, nlp: Language | None = None, city_names: Iterable[str] = ()
    ) -> None:
        self.gazetteer = gazetteer
        self.nlp = nlp or spacy.blank("en")
        kinds: dict[str, int] = {}
        bare: set[str] = set()
        # Typed spellings that name their street only without a directional that is
        # part of its name ("Point Rd" for North Point Road).
        undirected: set[str] = set()
        for variant in gazetteer.street_variants():
            if variant in DIRECTIONALS or variant in DIRECTIONAL_ABBREVIATIONS:
                continue  # "East" alone ("1951 East Joppa Rd") is read as a direction
            kinds[variant] = kinds.get(variant, 0) | _STREET
            key = street_key(variant)
            if key.base == key.core:
                bare.add(variant)
            elif key.key == key.base and _directional_in_name(gazetteer, variant):
                undirected.add(variant)
        for names, kind in (
            (gazetteer.place_names(), _PLACE),
            (gazetteer.neighbourhood_names(), _HOOD),
        ):
            for name in names:
                for spelling in {place_key(name), name.lower()}:
                    spelling = " ".join(spelling.split())
                    if len(spelling) < 3 or spelling.isdigit() or _names_crossing(spelling, kinds):
                        continue
                    kinds[spelling] = kinds.get(spelling, 0) | kind
        for name in city_names:
            spelling = " ".join(name.lower().split())
            kinds[spelling] = kinds.get(spelling, 0) | _CITY
        # A name that is a stop word ("The", a place in the extract) is never looked for.
        for word in self.nlp.Defaults.stop_words & kinds.keys():
            del kinds[word]
        self._kinds = kinds
        self._bare = frozenset(bare)
        self._undirected = frozenset(undirected)
        self._automaton = ahocorasick.Automaton()
        for spelling in kinds:
            self._automaton.add_word(spelling, spelling)
        self._automaton.make_automaton()
        self._matcher = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        for spelling in kinds:
            self._matcher.add(spelling, self._patterns(spelling))

    def _patterns(self, spelling: str) -> list[Doc]:
        """The spelling as tokens, and with a full stop after abbreviations ("St.")."""
        words = [t.text for t in self.nlp.make_doc(spelling)]
        choices = [[w, f"{w}."] if w in _DOTTABLE else [w] for w in words]
        return [
            Doc(self.nlp.vocab, words=list(c))
            for c in itertools.islice(itertools.product(*choices), 8)
        ]

    def readings(self, spelling: str) -> set[str]:
        """What a spelling can name: "street", "place", "neighbourhood"."""
        kinds = self._kinds.get(spelling, 0)
        return {
            n
            for bit, n in ((_STREET, "street"), (_PLACE, "place"), (_HOOD, "neighbourhood"))
            if kinds & bit
        }

    def is_bare(self, spelling: str) -> bool:
        """A street spelling without its type ("Fleet", "Linwood")."""
        return spelling in self._bare

    def _needs_capital(self, spelling: str) -> bool:
        """A bare street name or a one-word place name: too often a common word."""
        kinds = self._kinds[spelling]
        if kinds & _CITY or (kinds & _STREET and spelling not in self._bare):
            return False
        return spelling in self._bare or " " not in spelling

    def _may_cross(self, lowered: str, start: int, end: int, spelling: str) -> bool:
        """A lower-case bare street name joined to another word by &, and, / or @: it
        may be one side of a crossing ("fleet and ponca")."""
        return spelling in self._bare and bool(
            _JOIN_AFTER.match(lowered, end)
            or _JOIN_BEFORE.search(lowered, max(0, start - 8), start)
        )

    # -- pass 1 ------------------------------------------------------------------------

    def scan(self, text: str) -> tuple[list[tuple[int, int, str]], bool]:
        """Gazetteer spellings on word boundaries: ([(start, end, spelling)], truncated)."""
        lowered = text.lower()
        if len(lowered) != len(text):
            lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        hits: list[tuple[int, int, str]] = []
        for last, spelling in self._automaton.iter(lowered):
            start, end = last - len(spelling) + 1, last + 1
            if start > 0 and _is_word_char(lowered[start - 1]):
                continue
            if end < len(lowered) and _is_word_char(lowered[end]):
                continue
            if (
                self._needs_capital(spelling)
                and not text[start].isupper()
                and not self._may_cross(lowered, start, end, spelling)
            ):
                continue
            hits.append((start, end, spelling))
            if len(hits) >= MAX_CANDIDATES:
                return hits, True
        return hits, False

    # -- pass 2 ------------------------------------------------------------------------

    def find(self, text: str) -> list[Mention]:
        """The location expressions in `text`, in order."""
        return self.search(text).mentions

    def search(self, text: str) -> Found:
        hits, truncated = self.scan(text)
        if not hits:
            return Found([], 0, truncated, hits)
        # The city's own name needs no tokenizing unless a number or "of" comes before it
        # (an address or a block on a street of that name).
        plain = [self._is_plain_city(text, h) for h in hits]
        direct = [h for h, is_plain in zip(hits, plain, strict=True) if is_plain]
        rest = [h for h, is_plain in zip(hits, plain, strict=True) if not is_plain]
        mentions: list[Mention] = []
        for offset, piece in _stretches(text, rest):
            doc = self.nlp.make_doc(piece)
            spans = filter_spans([Span(doc, s, e, label=m) for m, s, e in self._matcher(doc)])
            mentions += self._read(doc, spans, offset)
        if direct:
            taken = [(m.start, m.end) for m in mentions]
            for start, end, spelling in sorted(direct, key=lambda h: (h[0], -h[1])):
                if any(start < e and s < end for s, e in taken):
                    continue  # inside a longer name ("Baltimore Street", "Baltimore City")
                part = Part(spelling, start, end, text[start:end])
                mentions.append(Mention("city", start, end, part.text, (part,), "city"))
                taken.append((start, end))
            mentions.sort(key=lambda m: m.start)
        return Found(mentions, len(hits), truncated, hits)

    def _is_plain_city(self, text: str, hit: tuple[int, int, str]) -> bool:
        start, _, spelling = hit
        kinds = self._kinds[spelling]
        if not kinds & _CITY or kinds & (_PLACE | _HOOD):
            return False
        if kinds & _STREET and spelling not in self._bare:
            return False
        before = text[max(0, start - 12) : start].split()
        return not before or not (_HOUSE_NUMBER.match(before[-1]) or before[-1].lower() == "of")

    def _read(self, doc: Doc, spans: list[Span], offset: int) -> list[Mention]:
        mentions: list[Mention] = []
        used: set[int] = set()
        for i, span in enumerate(spans):
            if i in used:
                continue
            used.add(i)
            spelling = span.label_
            kinds = self._kinds.get(spelling, 0)
            lower = self._is_lower_bare(span)
            if lower and not (kinds & _STREET and spelling in self._bare):
                continue
            part = self._part(span, offset)
            before = [t.lower_ for t in doc[max(0, span.start - 3) : span.start]]
            if kinds & _STREET:
                bare = spelling in self._bare
                if bare and span.end < len(doc) and not lower:
                    following = doc[span.end]
                    if _is_suffix(following.lower_):
                        continue  # "Wise Ave" when the gazetteer has only Wise Court
                    if following.lower_ in _POSSESSIVE or following.text[:1].isdigit():
                        continue  # "Fell's" (Fells Point), "Interstate 695" (a numbered road)
                    if (
                        following.text[:1].isupper()
                        and span.end + 1 < len(doc)
                        and _is_suffix(doc[span.end + 1].lower_)
                    ):
                        continue  # "Maple Shade Dr": a longer name, not Maple Avenue
                if lower:
                    crossing = self._lower_crossing(doc, spans, i)
                    if crossing is not None:
                        used.add(i + 1)
                        parts = [part, self._part(spans[i + 1], offset)]
                        mentions.append(
                            self._mention("intersection", parts, "lower_crossing", doc, offset)
                        )
                    continue
                # "NNNN block of" / a house number before the street.
                if len(before) == 3 and before[1] in ("block", "blk") and before[2] == "of":
                    number = doc[span.start - 3]
                    if _HOUSE_NUMBER.match(number.text):
                        mentions.append(
                            self._mention("block", [part], "block", doc, offset, number)
                        )
                        continue
                if span.start > 0 and _HOUSE_NUMBER.match(doc[span.start - 1].text):
                    number = doc[span.start - 1]
                    mentions.append(self._mention("address", [part], "number", doc, offset, number))
                    continue
                if kinds & _CITY and bare:
                    mentions.append(self._mention("city", [part], "city", doc, offset))
                    continue
                # A crossing street after a connector.
                if i + 1 < len(spans):
                    other = spans[i + 1]
                    between = doc[span.end : other.start]
                    other_kinds = self._kinds.get(other.label_, 0)
                    lower_other = self._is_lower_bare(other)
                    if (
                        len(between) == 1
                        and other_kinds & _STREET
                        and not (other_kinds & _CITY and other.label_ in self._bare)
                        and (
                            between[0].lower_ in _STRONG
                            or (
                                between[0].lower_ in _WEAK
                                and not (other.label_ in self._bare and other_kinds & ~_STREET)
                            )
                        )
                        # "Eastern Ave near linwood": a lower-case word, not a crossing.
                        and not (lower_other and between[0].lower_ not in _LOWER_JOIN)
                    ):
                        used.add(i + 1)
                        parts = [part, self._part(other, offset)]
                        how = "lower_crossing" if lower_other else "crossing"
                        mentions.append(self._mention("intersection", parts, how, doc, offset))
                        continue
                if not bare:
                    if span.start > 0 and doc[span.start - 1].lower_.rstrip(".") in _LETTERS:
                        continue  # "E Patapsco Ave" when only a Patapsco Avenue is known
                    if (
                        spelling in self._undirected
                        and span.start > 0
                        and _is_name_word(doc[span.start - 1])
                        and not (i > 0 and spans[i - 1].end == span.start)
                    ):
                        continue  # "Hawkins Point Rd": not North Point Road
                    mentions.append(self._mention("street", [part], "typed", doc, offset))
                    continue
                if not kinds & ~_STREET:
                    if before and before[-1] in _ON:
                        mentions.append(self._mention("street", [part], "on", doc, offset))
                    continue
            if kinds & _CITY and not kinds & (_PLACE | _HOOD):
                mentions.append(self._mention("city", [part], "city", doc, offset))
                continue
            # A place or a neighbourhood (or a bare street name that is also one).
            if span.end < len(doc) and _is_suffix(doc[span.end].lower_):
                continue  # "Eagle St": a street the gazetteer lacks, not the Eagle bar
            rule = "bare_place" if kinds & _STREET else None
            if kinds & _PLACE and kinds & _HOOD:
                kind = "place" if before and before[-1] in _SPOT else "neighbourhood"
                rule = rule or "spot"
            else:
                kind = "place" if kinds & _PLACE else "neighbourhood"
                rule = rule or kind
            mentions.append(self._mention(kind, [part], rule, doc, offset))
        return mentions

    def _is_lower_bare(self, span: Span) -> bool:
        """A name that needs a capital (a bare street name, a one-word place) without one."""
        return self._needs_capital(span.label_) and not span.text[:1].isupper()

    def _lower_crossing(self, doc: Doc, spans: list[Span], i: int) -> Span | None:
        """The street a lower-case bare street name crosses ("fleet and ponca",
        "fleet & Ponca St"): the next name, a street, after &, and, / or @ alone."""
        if i + 1 >= len(spans):
            return None
        span, other = spans[i], spans[i + 1]
        between = doc[span.end : other.start]
        other_kinds = self._kinds.get(other.label_, 0)
        if len(between) != 1 or between[0].lower_ not in _LOWER_JOIN:
            return None
        if span.start > 0 and doc[span.start - 1].lower_ in _DETERMINERS:
            return None
        if not other_kinds & _STREET or (other_kinds & _CITY and other.label_ in self._bare):
            return None
        return other

    @staticmethod
    def _part(span: Span, offset: int) -> Part:
        return Part(span.label_, offset + span.start_char, offset + span.end_char, span.text)

    @staticmethod
    def _mention(
        kind: str, parts: list[Part], rule: str, doc: Doc, offset: int, number: Token | None = None
    ) -> Mention:
        start, end = parts[0].start, parts[-1].end
        value = None
        if number is not None:
            start = offset + number.idx
            digits = re.match(r"\d+", number.text)
            value = int(digits.group()) if digits else None
        return Mention(
            kind=kind,
            start=start,
            end=end,
            text=doc.text[start - offset : end - offset],
            parts=tuple(parts),
            rule=rule,
            number=value,
        )


def _names_crossing(spelling: str, kinds: dict[str, int]) -> bool:
    """A place named after two streets the gazetteer has ("s central ave & bank st")."""
    crossing = _CROSSING_NAME.match(spelling)
    return crossing is not None and all(
        kinds.get(street, 0) & _STREET for street in crossing.groups()
    )


def _directional_in_name(gazetteer: Gazetteer, spelling: str) -> bool:
    """Whether a spelling without a directional names only streets that have one with
    no namesake of the opposite directional: then the word is part of the name (North
    Point Road), not a side of the grid (North and South Ann Street)."""
    options = gazetteer.street_options(spelling)
    keys = {option.key for option in options}
    if not options or spelling in keys:
        return False
    for key in keys:
        pre, _, rest = key.partition(" ")
        if pre not in _OPPOSITE or f"{_OPPOSITE[pre]} {rest}" in keys:
            return False
    return True


def _is_name_word(token: Token) -> bool:
    """A capitalised word that may begin a street's name: not a directional, and not a
    word that introduces a place ("On", "Near", "At")."""
    word = token.lower_.rstrip(".")
    return (
        token.text[:1].isupper()
        and token.is_alpha
        and word not in DIRECTIONALS
        and word not in DIRECTIONAL_ABBREVIATIONS
        and word not in _ON | _SPOT | _STRONG | _WEAK
    )


def _is_suffix(word: str) -> bool:
    word = word.rstrip(".")
    return word in SUFFIXES or word in SUFFIX_ABBREVIATIONS


def _stretches(text: str, hits: list[tuple[int, int, str]]) -> list[tuple[int, str]]:
    """(offset, piece) of text around the hits: three words before, two after, cut at
    whitespace (spaCy splits each whitespace-delimited chunk on its own, so a piece
    tokenizes as it would inside the whole text), overlapping ones merged."""
    ranges: list[tuple[int, int]] = []
    for start, end, _ in hits:
        left = start
        for _ in range(4):
            left = text.rfind(" ", 0, max(left - 1, 0)) + 1 if left > 0 else 0
        right = end
        for _ in range(3):
            found = text.find(" ", right + 1)
            right = len(text) if found < 0 else found
        ranges.append((left, right))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for left, right in ranges:
        if merged and left <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], right))
        else:
            merged.append((left, right))
    return [(left, text[left:right]) for left, right in merged]
