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
- An address the gazetteer cannot place falls back to its street, an intersection it
  cannot find to its streets (a bare name to its place or neighbourhood reading).
- Bounded work: at most `MAX_MENTIONS` mentions are resolved per post, in text order
  (the scan already keeps at most `places.MAX_CANDIDATES` names).
- Boundary: a location outside the city boundary makes the post not local.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from spacy.language import Language

from overheard.geo.gazetteer import Gazetteer, distance_m
from overheard.geo.places import Mention, Part, PlaceFinder
from overheard.model import Location, Precision, Span

#: Mentions resolved per post; the rest are counted and said to be left out.
MAX_MENTIONS = 20
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
}
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

    @property
    def location(self) -> Location:
        mention = self.mention
        return Location(
            lat=self.lat,
            lon=self.lon,
            precision=self.precision,
            span=Span(text=mention.text, start=mention.start, end=mention.end),
            source=SOURCE,
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

    @property
    def local(self) -> bool:
        """False only when the location lies outside the city."""
        return self.inside_city is not False


class Locator:
    def __init__(
        self, gazetteer: Gazetteer, nlp: Language | None = None, city_names: Iterable[str] = ()
    ) -> None:
        self.gazetteer = gazetteer
        self.finder = PlaceFinder(gazetteer, nlp, city_names)
        self._centre = gazetteer.boundary_point()
        # Lookups repeat across posts (the same streets and places): remembered.
        self._address = lru_cache(maxsize=4096)(gazetteer.address)
        self._intersection = lru_cache(maxsize=4096)(gazetteer.intersection)
        self._place = lru_cache(maxsize=4096)(gazetteer.place)
        self._neighbourhood = lru_cache(maxsize=4096)(gazetteer.neighbourhood)
        self._street_options = lru_cache(maxsize=4096)(gazetteer.street_options)
        self._contains = lru_cache(maxsize=4096)(gazetteer.contains)

    def locate(self, text: str) -> LocateResult:
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
        candidates = self._resolve(mentions)

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

    # -- resolving ---------------------------------------------------------------------

    def _resolve(self, mentions: list[Mention]) -> list[Candidate]:
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
            anchor = anchors[0][1] if anchors else None
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
            why = f"'{a.text}' and '{b.text}' do not meet in the gazetteer: their other readings"
            for part in (a, b):
                readings = self.finder.readings(part.spelling)
                alone = replace(
                    mention, start=part.start, end=part.end, text=part.text, parts=(part,)
                )
                if "street" in readings and not self.finder.is_bare(part.spelling):
                    return self._street(replace(alone, kind="street"), part, None, (found, why))
                for kind in ("place", "neighbourhood"):
                    if kind in readings:
                        candidate = self._named(replace(alone, kind=kind), part, kind, (found, why))
                        if candidate is not None:
                            return candidate
            return None
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
        anchor: Candidate | None,
        reasons: tuple[str, ...] = (),
    ) -> Candidate | None:
        options = self._street_options(part.spelling)
        if not options:
            return None
        if not reasons:
            reasons = (f"street '{part.text}' ({mention.explanation})",)
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
                why = (
                    f"{len(options)} streets named '{part.text}' ({names}): chose {chosen.name}, "
                    f"the one nearest {anchor.name}, mentioned too"
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
