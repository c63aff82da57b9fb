"""Which streets and which neighbourhood a located issue lies in, for the replay's summary.

Streets: those passing near the point whose name the location's span names ("2100
block of Fleet St" names Fleet Street; "Eastern and Ponca" names both), else the
nearest one. Only issues located to an address, an intersection or a street have
streets.

Neighbourhood: the neighbourhood area holding the point; OpenStreetMap often maps a
neighbourhood as a single node (every one in Baltimore's extract is), so without an
area the neighbourhood whose centre is nearest stands for it, up to `NEIGHBOURHOOD_REACH_M`.
A location known only to the city has no neighbourhood.
"""

from __future__ import annotations

import shapely
from shapely import STRtree

from overheard.geo.normalise import street_key, tokens
from overheard.geo.shapes import CityShape
from overheard.model import Location, Precision

#: How far from the point a street may pass and still be one the post names (an
#: intersection's point can lie on one street, tens of metres from the other's end).
STREET_REACH_M = 50.0
#: How far the nearest neighbourhood centre may be from the point.
NEIGHBOURHOOD_REACH_M = 1500.0

_ON_STREETS = frozenset({Precision.ADDRESS, Precision.INTERSECTION, Precision.STREET})


class Whereabouts:
    def __init__(self, shape: CityShape) -> None:
        self.shape = shape
        self._metres = shape.local_metres()
        self._streets = STRtree([self._metres.geometry(s.geometry) for s in shape.streets])
        self._cores = [tuple(street_key(s.name).core.split()) for s in shape.streets]
        hoods = shape.neighbourhoods
        self._areas = [(h.name, h.polygon) for h in hoods if h.polygon is not None]
        for _, polygon in self._areas:
            shapely.prepare(polygon)
        self._centres = STRtree([self._metres.point(h.lat, h.lon) for h in hoods])

    def streets(self, location: Location) -> list[str]:
        """The streets the location lies on, the one its span names first."""
        if location.precision not in _ON_STREETS:
            return []
        here = self._metres.point(location.lat, location.lon)
        near = self._streets.query(here, predicate="dwithin", distance=STREET_REACH_M)
        by_distance = sorted(
            (float(self._streets.geometries[i].distance(here)), int(i)) for i in near
        )
        if not by_distance:
            return []
        words = tokens(location.span.text) if location.span else []
        named = [i for _, i in by_distance if _contains(words, self._cores[i])]
        if location.precision is not Precision.INTERSECTION:
            named = named[:1]
        chosen = named or [by_distance[0][1]]
        return list(dict.fromkeys(self.shape.streets[i].name for i in chosen))

    def neighbourhood(self, location: Location) -> str | None:
        if location.precision is Precision.CITY:
            return None
        point = shapely.Point(location.lon, location.lat)
        for name, polygon in self._areas:
            if polygon.covers(point):
                return name
        here = self._metres.point(location.lat, location.lon)
        nearest = self._centres.query_nearest(here, max_distance=NEIGHBOURHOOD_REACH_M)
        if len(nearest) == 0:
            return None
        return self.shape.neighbourhoods[int(min(nearest))].name


def _contains(words: list[str], phrase: tuple[str, ...]) -> bool:
    """Whether `phrase` occurs in `words` as consecutive words."""
    n = len(phrase)
    return n > 0 and any(tuple(words[i : i + n]) == phrase for i in range(len(words) - n + 1))
