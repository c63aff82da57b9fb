"""The city's shapes, read from its gazetteer file: streets, boundary and neighbourhoods.

`Gazetteer` answers questions by name; the replay report needs the geometry
itself (to draw the map, and to say which street and which neighbourhood a point
lies in), so this reads the same SQLite file, read-only, beside the module that
writes it (`build.py`), so that the schema has one owner.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQUATOR = 111_320.0


@dataclass(frozen=True)
class Street:
    name: str
    #: WGS84, x = longitude.
    geometry: BaseGeometry


@dataclass(frozen=True)
class Neighbourhood:
    name: str
    lat: float
    lon: float
    #: The area, when OpenStreetMap maps the neighbourhood as one (often it is only a node).
    polygon: BaseGeometry | None


@dataclass(frozen=True)
class LocalMetres:
    """An equirectangular projection around a latitude: plenty within one city."""

    lat0: float

    def point(self, lat: float, lon: float) -> Point:
        return Point(lon * self._kx, lat * _M_PER_DEG_LAT)

    def geometry(self, geometry: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geometry, lambda xy: xy * (self._kx, _M_PER_DEG_LAT))

    @property
    def _kx(self) -> float:
        return _M_PER_DEG_LON_EQUATOR * math.cos(math.radians(self.lat0))


@dataclass(frozen=True)
class CityShape:
    """Everything drawn on the report's map, in a stable order (by gazetteer key)."""

    streets: tuple[Street, ...]
    boundary: BaseGeometry | None
    neighbourhoods: tuple[Neighbourhood, ...]

    @classmethod
    def read(cls, path: Path) -> CityShape:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            streets = tuple(
                Street(name, shapely.from_wkb(blob))
                for name, blob in db.execute("SELECT name, geometry FROM streets ORDER BY key")
            )
            row = db.execute("SELECT geometry FROM boundary WHERE id = 1").fetchone()
            hoods = tuple(
                Neighbourhood(name, lat, lon, shapely.from_wkb(blob) if blob else None)
                for name, lat, lon, blob in db.execute(
                    "SELECT name, lat, lon, polygon FROM neighbourhoods ORDER BY key"
                )
            )
        finally:
            db.close()
        return cls(streets, shapely.from_wkb(row[0]) if row else None, hoods)

    @property
    def bounds(self) -> tuple[float, float, float, float] | None:
        """(west, south, east, north) of the streets, else of the boundary; None when empty.

        The streets, because an extract may cover only part of the city (the shared
        Baltimore one covers its east), and only there can issues be placed."""
        if self.streets:
            west, south, east, north = shapely.total_bounds([s.geometry for s in self.streets])
        elif self.boundary is not None:
            west, south, east, north = self.boundary.bounds
        else:
            return None
        return float(west), float(south), float(east), float(north)

    def local_metres(self) -> LocalMetres:
        bounds = self.bounds
        return LocalMetres((bounds[1] + bounds[3]) / 2 if bounds else 0.0)
