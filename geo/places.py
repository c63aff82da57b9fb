"""Finding location expressions in a post's text: the gazetteer's names, and patterns.

Two passes, cheapest first, as in `overheard.classify.prefilter`:

1. `scan`: an Aho–Corasick automaton over the lowercased text finds every spelling
   the gazetteer knows (street variants, place and neighbourhood names) on word
   boundaries. Most posts stop here. A bare name (a street spelling without its
   type, "Fleet", "Linwood"; a one-word place, "Target") is kept only when it is
   written with a capital letter. At most `MAX_CANDIDATES` hits are kept per post,
   so a text with thousands of names costs no more than that.
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
   Court exists) is another street, and not a mention.

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

_RULES = {
    "typed": "a street name written with its type (Ave, St, …) is a street",
    "number": "a house number before a street name makes an address",
    "block": "'NNNN block of' before a street name makes a block",
    "crossing": "two street names joined by &, and, /, @, at, near, by or off make an intersection",
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
        for variant in gazetteer.street_variants():
            if variant in DIRECTIONALS or variant in DIRECTIONAL_ABBREVIATIONS:
                continue  # "East" alone ("1951 East Joppa Rd") is read as a direction
            kinds[variant] = kinds.get(variant, 0) | _STREET
            key = street_key(variant)
            if key.base == key.core:
                bare.add(variant)
        for names, kind in (
            (gazetteer.place_names(), _PLACE),
            (gazetteer.neighbourhood_names(), _HOOD),
        ):
            for name in names:
                for spelling in {place_key(name), name.lower()}:
                    spelling = " ".join(spelling.split())
                    if len(spelling) < 3 or spelling.isdigit():
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
            if self._needs_capital(spelling) and not text[start].isupper():
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
            if self._needs_capital(spelling) and not span.text[:1].isupper():
                continue
            part = self._part(span, offset)
            before = [t.lower_ for t in doc[max(0, span.start - 3) : span.start]]
            if kinds & _STREET:
                bare = spelling in self._bare
                if bare and span.end < len(doc) and _is_suffix(doc[span.end].lower_):
                    continue  # "Wise Ave" when the gazetteer has only Wise Court: "other_type"
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
                    ):
                        used.add(i + 1)
                        parts = [part, self._part(other, offset)]
                        mentions.append(
                            self._mention("intersection", parts, "crossing", doc, offset)
                        )
                        continue
                if not bare:
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
            rule = "bare_place" if kinds & _STREET else None
            if kinds & _PLACE and kinds & _HOOD:
                kind = "place" if before and before[-1] in _SPOT else "neighbourhood"
                rule = rule or "spot"
            else:
                kind = "place" if kinds & _PLACE else "neighbourhood"
                rule = rule or kind
            mentions.append(self._mention(kind, [part], rule, doc, offset))
        return mentions

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
