"""What the platform says about where a post was written: a geotag, and the author's
profile location.

X gives exact coordinates (a point) or a place with a bounding box; Reddit gives
neither. Both say where the author was, not where the problem is, so they are weaker
evidence than a place the text names (`overheard.geo.locate` says how they combine).

- A point is used as it is.
- A place is used (its bounding box's centre) only when the box is small: no more
  than `SMALL_PLACE_M` corner to corner, a street corner, a park or a neighbourhood.
  A city-sized box ("Baltimore, MD") says only which city, never where in it.
- The author's profile location is free text ("Baltimore, MD", "Fells Point"): it may
  say the author lives in the city, never where the problem is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from overheard.geo.gazetteer import distance_m
from overheard.model import PlatformGeo

#: The largest place bounding box (diagonal, metres) taken as a spot in the city.
SMALL_PLACE_M = 2000.0


@dataclass(frozen=True)
class Geotag:
    """A platform geotag reduced to one point: kind is "point" or "place"; `across_m`
    is the place's bounding-box diagonal (0 for a point)."""

    lat: float
    lon: float
    kind: str
    name: str
    across_m: float = 0.0

    @property
    def small(self) -> bool:
        return self.across_m <= SMALL_PLACE_M


def geotag(geo: PlatformGeo | None) -> tuple[Geotag | None, str | None]:
    """(the geotag, None), or (None, why it cannot be used), or (None, None) without one.

    The point wins over the place: X sends a place with every point, and the point is
    exact."""
    if geo is None:
        return None, None
    if geo.point is not None:
        lat, lon = geo.point.lat, geo.point.lon
        if not _valid(lat, lon):
            return None, f"the post's coordinates ({lat}, {lon}) are not a point on Earth"
        return Geotag(lat, lon, "point", f"the post's coordinates ({lat:.5f}, {lon:.5f})"), None
    place = geo.place
    if place is None or place.bbox is None:
        return None, None
    west, south, east, north = place.bbox
    label = place.full_name or place.name or place.id or "unnamed"
    if not (_valid(south, west) and _valid(north, east)) or south > north or west > east:
        return None, f"the post's place '{label}' has an unusable bounding box {place.bbox}"
    return (
        Geotag(
            (south + north) / 2,
            (west + east) / 2,
            "place",
            f"the post's place '{label}'",
            distance_m(south, west, north, east),
        ),
        None,
    )


def names_city(profile_location: str | None, city_names: Iterable[str]) -> bool:
    """Whether a profile location names the city ("Baltimore, MD", "bmore")."""
    if not profile_location:
        return False
    words = " ".join(re.findall(r"[\w']+", profile_location.lower()))
    return any(
        re.search(rf"(?<![\w']){re.escape(' '.join(name.lower().split()))}(?![\w'])", words)
        for name in city_names
    )


def _valid(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180
