"""From a post's text to one `Location`, with the reasons a person can read.

`Locator(gazetteer).locate(text)` finds the location expressions (`PlaceFinder`),
resolves each to a point with the gazetteer, keeps the most precise, and says whether
it lies inside the city boundary.

Rules, in the words the reasons use:

- Precision order: address > intersection > street (a block is a street, placed at
  the middle of the block) > place > neighbourhood > city; between equals, the higher
  confidence, then the first in the text.
- Confidence, one figure per way of resolving (`CONFIDENCE`): an OSM address point 0.9,
  an intersection 0.85, an interpolated address 0.8, a block 0.75, a place 0.7, a street
  0.5, a neighbourhood 0.4, the city (its name: a point inside its boundary) 0.2; 0.1
  less when a rule had to choose among streets of one name.
- Streets of one name ("Ann St": North and South Ann Street): those inside the city
  when some are not; then the one nearest another place the post names; with none,
  the longest.
- A street name written without a directional that names only a street outside the
  city ("Baltimore St", a county road) means the city's streets of that name with a
  directional ("East Baltimore Street").
- Lower-case bare street names joined into a crossing ("fleet and ponca") are placed
  only when the two streets meet; otherwise they are taken for ordinary words.
- An address the gazetteer cannot place falls back to its street, an intersection it
  cannot find to its streets, one inside the city first (a bare name to its place or
  neighbourhood reading).
- Bounded work: at most `MAX_MENTIONS` mentions are resolved per post, in text order
  (the scan already keeps at most `places.MAX_CANDIDATES` names).
- Boundary: a location outside the city boundary makes the post not local.
- With a geocoder (`overheard.geo.geocoder`, off by default): an address or an
  intersection the gazetteer placed less precisely than it was written (or not at all),
  and text that looks like an address on a street the gazetteer lacks ("7819 Wise Ave"),
  are asked of it, at most `MAX_GEOCODED` a post; its answers compete like the others,
  with the confidences `CONFIDENCE["geocoder_*"]`.

With the whole post (`locate_post`), the platform's geodata too (`overheard.geo.platform`):

- A place the text names beats the platform's geotag: the geotag says where the author
  was, the text where the problem is.
- Except to choose among streets of one name that nothing else in the text tells apart:
  the one nearest the geotag.
- When the text names nothing finer than the city, a geotag inside the city (a point,
  or a place no bigger than a neighbourhood) is the location, at `platform_geotag`
  precision; one outside the city is not used (the author may be away from home).
- The author's profile location is only a hint that the author is local: it is said,
  never used as the problem's place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from spacy.language import Language

from overheard.geo.gazetteer import Gazetteer, distance_m
from overheard.geo.geocoder import Budget, NominatimFallback
from overheard.geo.normalise import SUFFIX_ABBREVIATIONS, SUFFIXES
from overheard.geo.places import Mention, Part, PlaceFinder
from overheard.geo.platform import Geotag, geotag, names_city
from overheard.model import Location, Post, Precision, Span

#: Mentions resolved per post; the rest are counted and said to be left out.
MAX_MENTIONS = 20
#: Mentions asked of the geocoder per post.
MAX_GEOCODED = 3
SOURCE = "gazetteer"
CONFIDENCE = {
    "address": 0.9,
    "intersection": 0.85,
    "address_interpolated": 0.8,
    "block": 0.75,
    "place": 0.7,
    "street": 0.5,
    "neighbourhood": 0.4,
    "city": 0.2,
    "platform_point": 0.6,
    "platform_place": 0.4,
    "geocoder_address": 0.7,
    "geocoder_street": 0.45,
    "geocoder_place": 0.6,
    "geocoder_neighbourhood": 0.35,
}
#: What the gazetteer should have given for a mention written as an address or crossing.
_WANTED = {"address": Precision.ADDRESS, "intersection": Precision.INTERSECTION}
#: A house number, up to three words and a street type: an address, known street or not.
_ADDRESS_FORM = re.compile(
    r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z0-9][\w'.-]*\s+){1,3}?(?i:"
    + "|".join(sorted({*SUFFIXES, *SUFFIX_ABBREVIATIONS}, key=len, reverse=True))
    + r")\b\.?"
)
PLATFORM_SOURCE = "platform"
AMBIGUITY_PENALTY = 0.1
_ORDER = [
    Precision.ADDRESS,
    Precision.INTERSECTION,
    Precision.STREET,
    Precision.PLACE,
    Precision.NEIGHBOURHOOD,
    Precision.PLATFORM_GEOTAG,
    Precision.CITY,
]
_RANK = {precision: rank for rank, precision in enumerate(_ORDER)}


@dataclass(frozen=True)
class Candidate:
    """One mention resolved to a point, with how (a `Location` only when asked for:
    most candidates are not the best)."""

    lat: float
    lon: float
    precision: Precision
    confidence: float
    mention: Mention
    name: str
    reasons: tuple[str, ...]
    source: str = SOURCE

    @property
    def location(self) -> Location:
        mention = self.mention
        return Location(
            lat=self.lat,
            lon=self.lon,
            precision=self.precision,
            span=Span(text=mention.text, start=mention.start, end=mention.end),
            source=self.source,
            confidence=self.confidence,
        )


@dataclass(frozen=True)
class LocateResult:
    """The best location in a text (None when nothing resolved), the reasons, and
    whether it lies inside the city (None when there is no location or no boundary)."""

    location: Location | None
    mention: Mention | None
    reasons: list[str]
    inside_city: bool | None
    candidates: list[Candidate] = field(default_factory=list, repr=False)
    #: Gazetteer names kept by the scan, mentions found, mentions resolved.
    names_scanned: int = 0
    mentions_found: int = 0
    mentions_considered: int = 0
    #: Whether the author's profile location names the city (None: no profile location).
    profile_names_city: bool | None = None

    @property
    def local(self) -> bool:
        """False only when the location lies outside the city."""
        return self.inside_city is not False


class Locator:
    def __init__(
        self,
        gazetteer: Gazetteer,
        nlp: Language | None = None,
        city_names: Iterable[str] = (),
        geocoder: NominatimFallback | None = None,
    ) -> None:
        self.gazetteer = gazetteer
        self.geocoder = geocoder
        self.city_names = tuple(city_names)
        self.finder = PlaceFinder(gazetteer, nlp, self.city_names)
        self._centre = gazetteer.boundary_point()
        # Lookups repeat across posts (the same streets and places): remembered.
        self._address = lru_cache(maxsize=4096)(gazetteer.address)
        self._intersection = lru_cache(maxsize=4096)(gazetteer.intersection)
        self._place = lru_cache(maxsize=4096)(gazetteer.place)
        self._neighbourhood = lru_cache(maxsize=4096)(gazetteer.neighbourhood)
        self._street_options = lru_cache(maxsize=4096)(gazetteer.street_options)
        self._contains = lru_cache(maxsize=4096)(gazetteer.contains)

    def locate_post(self, post: Post) -> LocateResult:
        """The post's text, then its platform geodata and its author's profile location
        (the rules in the module's docstring)."""
        tag, unusable = geotag(post.geo)
        usable = None
        notes = [unusable] if unusable else []
        if tag is not None:
            usable, why = self._usable(tag)
            notes.append(why)
        result = self.locate(post.text, usable)
        reasons = result.reasons + notes
        location, inside = result.location, result.inside_city
        if usable is not None:
            if location is not None and location.precision is not Precision.CITY:
                said = location.span.text if location.span else location.precision
                reasons.append(
                    f"the text's {location.precision} '{said}' is used, not {usable.name}: "
                    "a place the text names beats the platform's geodata"
                )
            else:
                how = "platform_point" if usable.kind == "point" else "platform_place"
                location = Location(
                    lat=usable.lat,
                    lon=usable.lon,
                    precision=Precision.PLATFORM_GEOTAG,
                    source=PLATFORM_SOURCE,
                    confidence=CONFIDENCE[how],
                )
                inside = True
                reasons.append(
                    f"the text names nothing finer than the city: {usable.name}, inside the "
                    "city, place the post (platform geotag)"
                )
        profile = post.author.profile_location
        named = None
        if profile:
            named = names_city(profile, self.city_names)
            if named:
                reasons.append(
                    f"the author's profile location '{profile}' names the city: a hint that "
                    "the author is local, never the problem's place"
                )
        return replace(
            result,
            location=location,
            inside_city=inside,
            reasons=reasons,
            profile_names_city=named,
        )

    def _usable(self, tag: Geotag) -> tuple[Geotag | None, str]:
        """The geotag when it can place a post, and what was decided about it."""
        if tag.kind == "place" and not tag.small:
            return None, (
                f"{tag.name} is {tag.across_m / 1000:.1f} km across: it says which city at "
                "most, never where in it"
            )
        if self.gazetteer.has_boundary and not self._contains(tag.lat, tag.lon):
            return None, (
                f"{tag.name} lies outside the city boundary: not used to place the problem "
                "(the author may be away from it)"
            )
        return tag, f"{tag.name} lies inside the city"

    def locate(self, text: str, hint: Geotag | None = None) -> LocateResult:
        """The best location the text names; `hint` (the post's geotag) only chooses
        among streets of one name that nothing else in the text tells apart."""
        found = self.finder.search(text)
        mentions = found.mentions[:MAX_MENTIONS]
        reasons: list[str] = []
        if found.truncated:
            reasons.append(
                f"more than {found.candidates} gazetteer names in the text: "
                f"only the first {found.candidates} were looked at"
            )
        if len(found.mentions) > MAX_MENTIONS:
            reasons.append(
                f"{len(found.mentions)} location mentions: only the first {MAX_MENTIONS} "
                "were resolved"
            )
        candidates = self._resolve(mentions, hint)
        if self.geocoder is not None:
            candidates = sorted(
                candidates + self._geocode(text, mentions, candidates, reasons),
                key=lambda c: c.mention.start,
            )

        def result(best: Candidate | None, inside: bool | None) -> LocateResult:
            return LocateResult(
                location=best.location if best is not None else None,
                mention=best.mention if best is not None else None,
                reasons=reasons,
                inside_city=inside,
                candidates=candidates,
                names_scanned=found.candidates,
                mentions_found=len(found.mentions),
                mentions_considered=len(mentions),
            )

        if not candidates:
            if mentions:
                reasons.append("no mention could be placed by the gazetteer")
            return result(None, None)
        best = min(
            candidates,
            key=lambda c: (
                _RANK[c.precision],
                -c.confidence,
                c.mention.start,
            ),
        )
        reasons += best.reasons
        others = len(candidates) - 1
        if others:
            reasons.append(
                f"chose {best.precision} '{best.mention.text}' over {others} other "
                f"mention{'s' if others > 1 else ''}: the most precise "
                "(address > intersection > street > place > neighbourhood > city), then the most "
                "confident, then the first"
            )
        inside: bool | None = None
        if self.gazetteer.has_boundary:
            inside = self._contains(best.lat, best.lon)
            if not inside:
                reasons.append(
                    f"{best.name} ({best.lat:.5f}, {best.lon:.5f}) lies "
                    "outside the city boundary: the post is not local"
                )
        return result(best, inside)

    # -- the geocoder --------------------------------------------------------------------

    def _geocode(
        self, text: str, mentions: list[Mention], resolved: list[Candidate], reasons: list[str]
    ) -> list[Candidate]:
        """Candidates from the geocoder for what the gazetteer placed too coarsely."""
        assert self.geocoder is not None
        by_mention = {id(c.mention): c for c in resolved}
        asks: list[Mention] = []
        for mention in mentions:
            wanted = _WANTED.get(mention.kind)
            got = by_mention.get(id(mention))
            if wanted is not None and (got is None or got.precision is not wanted):
                asks.append(mention)
        taken = [(m.start, m.end) for m in mentions]
        for match in _ADDRESS_FORM.finditer(text):
            if not any(match.start() < e and s < match.end() for s, e in taken):
                asks.append(
                    Mention("address", match.start(), match.end(), match.group(), (), "form")
                )
        found: list[Candidate] = []
        budget: Budget | None = None
        for mention in asks[:MAX_GEOCODED]:
            budget = budget or self.geocoder.budget()
            answer = self.geocoder.geocode(mention.text, budget)
            if answer.found is None:
                reasons.append(answer.reason)
                continue
            how = f"geocoder_{answer.found.precision.value}"
            found.append(
                Candidate(
                    answer.found.lat,
                    answer.found.lon,
                    answer.found.precision,
                    CONFIDENCE[how],
                    mention,
                    answer.found.name,
                    (answer.reason,),
                    source=f"geocoder:{self.geocoder.provider}",
                )
            )
        return found

    # -- resolving ---------------------------------------------------------------------

    def _resolve(self, mentions: list[Mention], hint: Geotag | None) -> list[Candidate]:
        """Every mention that resolves; streets of one name last, to use the others."""
        resolved: dict[int, Candidate] = {}
        later: list[int] = []
        for i, mention in enumerate(mentions):
            if mention.kind == "street" and self._options(mention.parts[0]) > 1:
                later.append(i)
                continue
            candidate = self._one(mention)
            if candidate is not None:
                resolved[i] = candidate
        for i in later:
            anchors = sorted(
                resolved.items(), key=lambda item: abs(item[0] - i)
            )  # the nearest in the text first
            anchor: Candidate | Geotag | None = anchors[0][1] if anchors else hint
            candidate = self._street(mentions[i], mentions[i].parts[0], anchor)
            if candidate is not None:
                resolved[i] = candidate
        return [resolved[i] for i in sorted(resolved)]

    def _options(self, part: Part) -> int:
        return len(self._street_options(part.spelling))

    def _one(self, mention: Mention) -> Candidate | None:
        g = self.gazetteer
        found = f"{mention.kind} '{mention.text}' ({mention.explanation})"
        if mention.kind in ("address", "block") and mention.number is not None:
            part = mention.parts[0]
            number = mention.number
            if mention.kind == "block":
                number = number // g.block_size * g.block_size + g.block_size // 2
            point = self._address(number, part.spelling)
            if point is None:
                why = f"the gazetteer cannot place {number} {part.text}: the street instead"
                return self._street(mention, part, None, (found, why))
            if mention.kind == "block":
                how, precision = "block", Precision.STREET
                why = f"placed at the middle of the block ({number} {point.name.split(' ', 1)[1]})"
            else:
                how, precision = point.precision, Precision.ADDRESS
                why = (
                    f"{point.name}: an OSM address point"
                    if point.precision == "address"
                    else f"{point.name}: interpolated along the street"
                )
            return self._candidate(
                mention, point.lat, point.lon, precision, how, point.name, (found, why)
            )
        if mention.kind == "intersection":
            a, b = mention.parts[0], mention.parts[1]
            point = self._intersection(a.spelling, b.spelling)
            if point is not None:
                return self._candidate(
                    mention,
                    point.lat,
                    point.lon,
                    Precision.INTERSECTION,
                    "intersection",
                    point.name,
                    (found,),
                )
            if mention.rule == "lower_crossing":
                return None  # words in lower case that happen to be street names
            why = (
                f"'{a.text}' and '{b.text}' do not meet in the gazetteer: their other "
                "readings, one inside the city first"
            )
            readings = [c for part in (a, b) if (c := self._alone(mention, part, (found, why)))]
            inside = [c for c in readings if self._inside(c.lat, c.lon)]
            chosen = inside or readings
            return chosen[0] if chosen else None
        if mention.kind == "street":
            return self._street(mention, mention.parts[0], None)
        if mention.kind == "city":
            centre = self._centre
            if centre is None:
                return None
            return self._candidate(
                mention, centre.lat, centre.lon, Precision.CITY, "city", mention.text, (found,)
            )
        return self._named(mention, mention.parts[0], mention.kind, (found,))

    def _alone(self, mention: Mention, part: Part, reasons: tuple[str, ...]) -> Candidate | None:
        """One name of a crossing that does not meet, read alone: a typed street, else a
        place or neighbourhood."""
        readings = self.finder.readings(part.spelling)
        alone = replace(mention, start=part.start, end=part.end, text=part.text, parts=(part,))
        if "street" in readings and not self.finder.is_bare(part.spelling):
            return self._street(replace(alone, kind="street"), part, None, reasons)
        for kind in ("place", "neighbourhood"):
            if kind in readings:
                candidate = self._named(replace(alone, kind=kind), part, kind, reasons)
                if candidate is not None:
                    return candidate
        return None

    def _named(
        self, mention: Mention, part: Part, kind: str, reasons: tuple[str, ...]
    ) -> Candidate | None:
        place, hood = ("place", self._place), ("neighbourhood", self._neighbourhood)
        lookups = [place, hood] if kind == "place" else [hood, place]
        for how, lookup in lookups:
            point = lookup(part.spelling) or lookup(part.text)
            if point is not None:
                precision = Precision.PLACE if how == "place" else Precision.NEIGHBOURHOOD
                return self._candidate(
                    mention, point.lat, point.lon, precision, how, point.name, reasons
                )
        return None

    def _street(
        self,
        mention: Mention,
        part: Part,
        anchor: Candidate | Geotag | None,
        reasons: tuple[str, ...] = (),
    ) -> Candidate | None:
        options = self._street_options(part.spelling)
        if not options:
            return None
        if not reasons:
            reasons = (f"street '{part.text}' ({mention.explanation})",)
        if not any(self._inside(o.point.lat, o.point.lon) for o in options):
            directional = [
                o
                for o in self.gazetteer.street_options_directional(part.spelling)
                if self._inside(o.point.lat, o.point.lon)
            ]
            if directional:
                reasons = (
                    *reasons,
                    f"'{part.text}' names only {options[0].name} outside the city: "
                    "a name written without its directional means the city's streets "
                    f"of that name ({', '.join(o.name for o in directional)})",
                )
                options = directional
        chosen = options[0]
        penalty = 0.0
        if len(options) > 1:
            names = ", ".join(o.name for o in options)
            penalty = AMBIGUITY_PENALTY
            inside = [o for o in options if self._inside(o.point.lat, o.point.lon)]
            if inside and len(inside) < len(options):
                options = inside
                names = f"{names}; inside the city: {', '.join(o.name for o in inside)}"
                chosen = options[0]
            if len(options) == 1:
                why = (
                    f"streets named '{part.text}' ({names}): chose {chosen.name}, "
                    "the one inside the city"
                )
            elif anchor is not None:
                chosen = min(
                    options,
                    key=lambda o: distance_m(o.point.lat, o.point.lon, anchor.lat, anchor.lon),
                )
                by = (
                    f"{anchor.name}, which nothing in the text outweighs"
                    if isinstance(anchor, Geotag)
                    else f"{anchor.name}, mentioned too"
                )
                why = (
                    f"{len(options)} streets named '{part.text}' ({names}): chose {chosen.name}, "
                    f"the one nearest {by}"
                )
            else:
                why = (
                    f"{len(options)} streets named '{part.text}' ({names}): chose {chosen.name}, "
                    "the longest, as nothing else in the post says which"
                )
            reasons = (*reasons, why)
        return self._candidate(
            mention,
            chosen.point.lat,
            chosen.point.lon,
            Precision.STREET,
            "street",
            chosen.name,
            reasons,
            penalty,
        )

    def _inside(self, lat: float, lon: float) -> bool:
        return not self.gazetteer.has_boundary or self._contains(lat, lon)

    @staticmethod
    def _candidate(
        mention: Mention,
        lat: float,
        lon: float,
        precision: Precision,
        how: str,
        name: str,
        reasons: tuple[str, ...],
        penalty: float = 0.0,
    ) -> Candidate:
        confidence = round(CONFIDENCE[how] - penalty, 2)
        return Candidate(lat, lon, precision, confidence, mention, name, reasons)
