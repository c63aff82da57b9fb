"""Street names to canonical keys, and the common ways of writing them.

"East Fayette Street", "E. Fayette St" and "E FAYETTE ST" all become the key
"e fayette st". A key has three levels, for looser matches:

- `key`: the whole name, directionals and suffix abbreviated ("e fayette st");
- `base`: without its directionals ("fayette st");
- `core`: without directionals and suffix ("fayette").

Nothing here is particular to one city: the abbreviations are the USPS ones.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

DIRECTIONALS: dict[str, str] = {
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
}
DIRECTIONAL_ABBREVIATIONS = frozenset(DIRECTIONALS.values())
DIRECTIONAL_WORDS = {abbr: word for word, abbr in DIRECTIONALS.items()}

SUFFIXES: dict[str, str] = {
    "street": "st",
    "avenue": "ave",
    "av": "ave",
    "road": "rd",
    "boulevard": "blvd",
    "drive": "dr",
    "court": "ct",
    "place": "pl",
    "lane": "ln",
    "terrace": "ter",
    "parkway": "pkwy",
    "highway": "hwy",
    "alley": "aly",
    "square": "sq",
    "circle": "cir",
    "plaza": "plz",
    "expressway": "expy",
    "freeway": "fwy",
    "crescent": "cres",
    "trail": "trl",
    "turnpike": "tpke",
    "bridge": "brg",
    "tunnel": "tunl",
    "way": "way",
    "walk": "walk",
    "mews": "mews",
    "row": "row",
    "pike": "pike",
    "path": "path",
}
SUFFIX_ABBREVIATIONS = frozenset(SUFFIXES.values())
SUFFIX_WORDS = {abbr: word for word, abbr in SUFFIXES.items() if word != "av"}

_ORDINAL_WORDS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
]
ORDINALS: dict[str, str] = {}
for _n, _word in enumerate(_ORDINAL_WORDS, start=1):
    _suffix = "th" if 10 < _n < 20 else {1: "st", 2: "nd", 3: "rd"}.get(_n % 10, "th")
    ORDINALS[_word] = f"{_n}{_suffix}"
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70}
for _tens_word, _tens in _TENS.items():
    ORDINALS[_tens_word[:-1] + "ieth"] = f"{_tens}th"
    for _n, _word in enumerate(_ORDINAL_WORDS[:9], start=1):
        _suffix = {1: "st", 2: "nd", 3: "rd"}.get(_n, "th")
        ORDINALS[f"{_tens_word}-{_word}"] = f"{_tens + _n}{_suffix}"
ORDINAL_WORDS = {numeral: word for word, numeral in ORDINALS.items()}

_PUNCTUATION = re.compile(r"[.,'’`\"()]")
_SPACE = re.compile(r"\s+")


def tokens(text: str) -> list[str]:
    """Lower-case words, without punctuation."""
    return [t for t in _SPACE.split(_PUNCTUATION.sub("", text.lower())) if t]


@dataclass(frozen=True)
class StreetKey:
    """A street name in canonical form, at three levels of looseness."""

    key: str
    base: str
    core: str


def _canonical(words: list[str]) -> tuple[list[str], str | None, str | None, str | None]:
    """(middle words, pre-directional, suffix, post-directional), all abbreviated."""
    words = [ORDINALS.get(w, w) for w in words]
    pre = post = suffix = None
    if len(words) >= 3 and DIRECTIONALS.get(words[-1], words[-1]) in DIRECTIONAL_ABBREVIATIONS:
        post = DIRECTIONALS.get(words[-1], words[-1])
        words = words[:-1]
    if len(words) >= 2 and SUFFIXES.get(words[-1], words[-1]) in SUFFIX_ABBREVIATIONS:
        suffix = SUFFIXES.get(words[-1], words[-1])
        words = words[:-1]
    # A directional is the name itself when nothing but a suffix follows it ("East Street").
    if len(words) >= 2 and DIRECTIONALS.get(words[0], words[0]) in DIRECTIONAL_ABBREVIATIONS:
        pre = DIRECTIONALS.get(words[0], words[0])
        words = words[1:]
    # "St" anywhere but in the suffix's place is Saint ("St. Paul St").
    words = ["saint" if w == "st" else w for w in words]
    return words, pre, suffix, post


def street_key(name: str) -> StreetKey:
    """The canonical key of a street name ("East Fayette Street" → "e fayette st")."""
    middle, pre, suffix, post = _canonical(tokens(name))
    core = " ".join(middle)
    base = " ".join([*middle, *([suffix] if suffix else [])])
    key = " ".join([*([pre] if pre else []), base, *([post] if post else [])])
    return StreetKey(key=key, base=base, core=core)


def place_key(name: str) -> str:
    """A looser key for names of places and neighbourhoods: lower case, no punctuation."""
    words = ["saint" if w == "st" else w for w in tokens(name.replace("&", " and "))]
    return " ".join(words)


def variants(name: str, limit: int = 64) -> set[str]:
    """Common ways of writing a street name, lower case, its key among them.

    Directionals spelt out, abbreviated or left off; suffixes spelt out, abbreviated
    or left off; ordinals as numerals or words; Saint or St.
    """
    middle, pre, suffix, post = _canonical(tokens(name))
    word_choices: list[list[str]] = []
    for word in middle:
        choices = [word]
        if word in ORDINAL_WORDS:
            choices.append(ORDINAL_WORDS[word])
        if word == "saint":
            choices.append("st")
        word_choices.append(choices)
    pre_choices: list[list[str]] = [[]]
    if pre:
        pre_choices = [[pre], [DIRECTIONAL_WORDS[pre]], []]
    post_choices: list[list[str]] = [[]]
    if post:
        post_choices = [[post], [DIRECTIONAL_WORDS[post]], []]
    suffix_choices: list[list[str]] = [[]]
    if suffix:
        suffix_choices = [[suffix], [SUFFIX_WORDS.get(suffix, suffix)], []]
    found: set[str] = set()
    for pre_w, words, suffix_w, post_w in itertools.product(
        pre_choices, itertools.product(*word_choices), suffix_choices, post_choices
    ):
        found.add(" ".join([*pre_w, *words, *suffix_w, *post_w]))
        if len(found) >= limit:
            break
    found.add(street_key(name).key)
    return found


_HOUSE_NUMBER = re.compile(r"^\s*(\d+)")


def house_number(text: str) -> int | None:
    """The leading integer of a house number ("12A" → 12, "101-103" → 101), or None."""
    match = _HOUSE_NUMBER.match(text)
    return int(match.group(1)) if match else None
