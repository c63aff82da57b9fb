"""The gazetteer: one SQLite file per city, built by `overheard gazetteer build`.

Open it with `Gazetteer.open(path)` (fast: the file is opened read-only and only the
street keys and the boundary are read at start-up) and ask it for a street, an
intersection, an address, a place or a neighbourhood by name, or whether a point lies
inside the city boundary. Points are WGS84 (lat, lon).

Tables: `streets` (one row per canonical key, geometry as WKB MultiLineString),
`street_index` (SQLite R-tree of street bounding boxes), `street_variants`,
`intersections`, `addresses`, `places` (with the R-tree `place_index`),
`neighbourhoods`, `boundary` and `meta`.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely
from shapely import ops
from shapely.geometry import LineString, MultiLineString, Point
from shapely.geometry.base import BaseGeometry

from overheard.geo.normalise import place_key, street_key

FORMAT_VERSION = 1

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE streets (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, base TEXT NOT NULL, core TEXT NOT NULL,
    name TEXT NOT NULL, geometry BLOB NOT NULL
);
CREATE INDEX streets_base ON streets(base);
CREATE INDEX streets_core ON streets(core);
CREATE VIRTUAL TABLE street_index USING rtree(id, minx, maxx, miny, maxy);
CREATE TABLE street_variants (variant TEXT NOT NULL, street_id INTEGER NOT NULL);
CREATE INDEX street_variants_variant ON street_variants(variant);
CREATE TABLE intersections (a INTEGER NOT NULL, b INTEGER NOT NULL, lat REAL, lon REAL);
CREATE INDEX intersections_ab ON intersections(a, b);
CREATE TABLE addresses (
    key TEXT NOT NULL, number INTEGER NOT NULL, housenumber TEXT NOT NULL, street TEXT NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL
);
CREATE INDEX addresses_key ON addresses(key, number);
CREATE VIRTUAL TABLE address_index USING rtree(id, minx, maxx, miny, maxy);
CREATE TABLE places (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, polygon BLOB
);
CREATE INDEX places_key ON places(key);
CREATE VIRTUAL TABLE place_index USING rtree(id, minx, maxx, miny, maxy);
CREATE TABLE neighbourhoods (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, polygon BLOB
);
CREATE TABLE boundary (id INTEGER PRIMARY KEY, geometry BLOB NOT NULL);
"""

# Address points farther than this from their street's line are not used to interpolate.
_ON_STREET_M = 80.0
# Ways of two streets that come this close without sharing a node still meet.
_NEAR_MISS_M = 25.0
# Nodes of one street pair farther apart than this are different crossings.
_SAME_CROSSING_M = 150.0
# Address points of parallel streets this far away still share the block numbering.
_GRID_REACH_M = 1500.0
_PARALLEL_DEG = 25.0
_GRID_BLOCKS = 6
# Directionals whose streets number away from their namesake with the opposite one.
_OPPOSITE = {"n": "s", "s": "n", "e": "w", "w": "e"}
# The way (east, north in local metres) house numbers rise on streets of each directional.
_RISING = {
    "n": np.array([0.0, 1.0]),
    "s": np.array([0.0, -1.0]),
    "e": np.array([1.0, 0.0]),
    "w": np.array([-1.0, 0.0]),
}
# Crossings by these do not end a block; crossings closer than this are one block end.
_NOT_BLOCK_ENDS = frozenset({"aly", "way", "ct", "walk", "path", "mews", "row", "pl"})
_SAME_BLOCK_END_M = 40.0  # numbers this many blocks either side are used
# A guess is refused when the street's own numbers this close to it are far from it.
_CONTRADICT_M = 300.0
# A cross street's number is read from address points this close to the crossing.
_CALIBRATION_M = 150.0
_EARTH_M_PER_DEG_LAT = 110_574.0
_EARTH_M_PER_DEG_LON_EQUATOR = 111_320.0


class GazetteerError(Exception):
    """The gazetteer file is missing, not a gazetteer, or cannot answer the question."""


class NoBoundary(GazetteerError):
    """The gazetteer was built without a city boundary."""


@dataclass(frozen=True)
class LatLon:
    lat: float
    lon: float


@dataclass(frozen=True)
class StreetMatch:
    """A street found by name. `level` says how loosely: "key", "base" (directional
    ignored) or "core" (directional and suffix ignored). `point` is a point on it."""

    name: str
    key: str
    level: str
    point: LatLon
    ids: tuple[int, ...] = field(repr=False)
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Located:
    """A point with how it was found: "address", "address_interpolated", "intersection",
    "place" or "neighbourhood"."""

    lat: float
    lon: float
    precision: str
    name: str


def distance_m(a_lat: float, a_lon: float, b_lat: float, b_lon: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(a_lat), math.radians(b_lat)
    dp, dl = p2 - p1, math.radians(b_lon - a_lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def _heading(geometry: BaseGeometry) -> float:
    """The direction (degrees, 0–180) of a line's longest part, end to end."""
    parts = list(geometry.geoms) if hasattr(geometry, "geoms") else [geometry]
    part = max(parts, key=lambda g: g.length)
    (x0, y0), (x1, y1) = part.coords[0], part.coords[-1]
    return math.degrees(math.atan2(y1 - y0, x1 - x0)) % 180.0


def _angle(a: float, b: float) -> float:
    """The angle between two undirected headings, 0–90 degrees."""
    difference = abs(a - b) % 180.0
    return min(difference, 180.0 - difference)


class _Local:
    """A local equirectangular projection in metres, good to a few km."""

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0, self.lon0 = lat0, lon0
        self.kx = _EARTH_M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0))

    def to_m(self, geometry: BaseGeometry) -> BaseGeometry:
        return shapely.transform(
            geometry, lambda c: (c - [self.lon0, self.lat0]) * [self.kx, _EARTH_M_PER_DEG_LAT]
        )

    def point_m(self, lat: float, lon: float) -> Point:
        return Point((lon - self.lon0) * self.kx, (lat - self.lat0) * _EARTH_M_PER_DEG_LAT)

    def to_latlon(self, point: Point) -> LatLon:
        return LatLon(self.lat0 + point.y / _EARTH_M_PER_DEG_LAT, self.lon0 + point.x / self.kx)


def _contradicted(
    number: int, point: Point, rows: list[tuple[int, float, float]], local: _Local, block: int
) -> bool:
    """Whether the street's own address points near a guessed point all carry numbers
    far from the one asked: there, the street is numbered otherwise (a county stretch
    of a city street, numbered again from its own line)."""
    near = [n for n, lat, lon in rows if local.point_m(lat, lon).distance(point) <= _CONTRADICT_M]
    return bool(near) and min(abs(n - number) for n in near) > _GRID_BLOCKS * block


def _fit_near(
    anchors: list[tuple[float, float]], number: int, rising: float, block: int
) -> float | None:
    """Where `number` falls along a street's axis, from a line fitted through the
    (number, position) of its crossings within four blocks of it: the slope is the
    median of the pairs' (robust to one misread crossing) and must rise the way the
    directional says. None with fewer than two such crossings, or when the number is
    more than three blocks beyond them."""
    near = [a for a in anchors if abs(a[0] - number) <= 4 * block]
    if len({n for n, _ in near}) < 2:
        return None
    lowest, highest = min(n for n, _ in near), max(n for n, _ in near)
    if not lowest - 3 * block <= number <= highest + 3 * block:
        return None
    slopes = [
        (xb - xa) / (nb - na) for (na, xa), (nb, xb) in itertools.combinations(near, 2) if nb != na
    ]
    slope = statistics.median(slopes)
    if slope * rising <= 0:
        return None
    return statistics.median(xa - slope * na for na, xa in near) + slope * number


def _at_axis(line: MultiLineString, mean: np.ndarray, u: np.ndarray, x: float) -> Point | None:
    """The point of `line` that lies at `x` along the axis `u` through `mean`: where a
    segment crosses that level (a street that bends is followed, not cut by the straight
    axis), the one nearest the axis when several do; just past the end the extract
    holds, the nearest point within `_ON_STREET_M`; otherwise None."""
    target = np.array([mean[0] + x * u[0], mean[1] + x * u[1]])
    found: list[np.ndarray] = []
    for part in line.geoms:
        coords = np.asarray(part.coords)
        levels = (coords - mean) @ u
        for i in range(len(coords) - 1):
            a, b = levels[i], levels[i + 1]
            if a == b or not min(a, b) <= x <= max(a, b):
                continue
            found.append(coords[i] + (coords[i + 1] - coords[i]) * (x - a) / (b - a))
    if not found:
        # Just past the end the extract holds: the nearest point, if near enough.
        end = Point(float(target[0]), float(target[1]))
        if line.distance(end) > _ON_STREET_M:
            return None
        return ops.nearest_points(line, end)[0]
    best = min(found, key=lambda p: float(np.linalg.norm(p - target)))
    return Point(float(best[0]), float(best[1]))


class Gazetteer:
    """Read-only lookups in a gazetteer file."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.path = path
        self._db = db
        try:
            self.meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise GazetteerError(f"{path} is not a gazetteer: {exc}") from exc
        if self.meta.get("format_version") != str(FORMAT_VERSION):
            raise GazetteerError(
                f"{path} has gazetteer format {self.meta.get('format_version')!r}, "
                f"this version reads {FORMAT_VERSION}: build it again"
            )
        self.block_size = int(self.meta.get("block_size", "100"))
        self._by_key: dict[str, int] = {}
        self._by_base: dict[str, list[int]] = defaultdict(list)
        self._by_core: dict[str, list[int]] = defaultdict(list)
        self._names: dict[int, str] = {}
        self._keys: dict[int, str] = {}
        self._pre: dict[int, str] = {}  # the pre-directional of each street's key
        for street_id, key, base, core, name in db.execute(
            "SELECT id, key, base, core, name FROM streets"
        ):
            self._by_key[key] = street_id
            self._by_base[base].append(street_id)
            self._by_core[core].append(street_id)
            self._names[street_id] = name
            self._keys[street_id] = key
            self._pre[street_id] = (
                key.split(" ", 1)[0] if key != base and key.endswith(base) else ""
            )
        row = db.execute("SELECT geometry FROM boundary WHERE id = 1").fetchone()
        self._boundary: BaseGeometry | None = None
        if row is not None:
            self._boundary = shapely.from_wkb(row[0])
            shapely.prepare(self._boundary)
        self._geometry = lru_cache(maxsize=4096)(self._load_geometry)
        self._calibration = lru_cache(maxsize=16384)(self._calibrate)
        self._rates: dict[str, float] | None = None  # metres per number, by directional

    @classmethod
    def open(cls, path: Path | str) -> Gazetteer:
        path = Path(path)
        if not path.is_file():
            raise GazetteerError(
                f"no gazetteer at {path}: build one with `overheard gazetteer build`"
            )
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            return cls(db, path)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Gazetteer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- streets -------------------------------------------------------------------------

    def _load_geometry(self, street_id: int) -> MultiLineString:
        (blob,) = self._db.execute(
            "SELECT geometry FROM streets WHERE id = ?", (street_id,)
        ).fetchone()
        geometry = shapely.from_wkb(blob)
        assert isinstance(geometry, MultiLineString)
        return geometry

    def _candidates(self, name: str) -> tuple[list[int], str]:
        key = street_key(name)
        if not key.key:
            return [], ""
        if key.key in self._by_key:
            return [self._by_key[key.key]], "key"
        if key.base in self._by_base:
            # A directional given must not match a street with another one ("W Baltimore
            # St" is not "East Baltimore Street"), but may match one without any.
            ids = [i for i in self._by_base[key.base] if key.key == key.base or not self._pre[i]]
            if ids:
                return ids, "base"
        if key.base == key.core and key.core in self._by_core:  # no suffix given
            return list(self._by_core[key.core]), "core"
        row = self._db.execute(
            "SELECT DISTINCT street_id FROM street_variants WHERE variant = ?", (key.key,)
        ).fetchall()
        return [r[0] for r in row], "variant"

    def street(self, name: str) -> StreetMatch | None:
        """The street of that name, in any common spelling, or None."""
        ids, level = self._candidates(name)
        if not ids:
            return None
        longest = max(ids, key=lambda i: self._geometry(i).length)
        geometry = self._geometry(longest)
        part = max(geometry.geoms, key=lambda g: g.length)
        middle = part.interpolate(0.5, normalized=True)
        return StreetMatch(
            name=self._names[longest],
            key=self._keys[longest],
            level=level,
            point=LatLon(middle.y, middle.x),
            ids=tuple(ids),
            names=tuple(self._names[i] for i in ids),
        )

    def street_options(self, name: str) -> list[StreetMatch]:
        """Every street the name could mean, one match each (a point in the middle of its
        longest part), longest street first: for choosing among streets of one name."""
        return self._options(*self._candidates(name))

    def street_options_directional(self, name: str) -> list[StreetMatch]:
        """For a name written without a directional ("Baltimore St"): every street of
        that name with one ("East Baltimore Street"), as `street_options` gives them."""
        key = street_key(name)
        if not key.key or key.key != key.base:
            return []
        ids = [i for i in self._by_base.get(key.base, []) if self._pre[i]]
        return self._options(ids, "base")

    def _options(self, ids: list[int], level: str) -> list[StreetMatch]:
        options = []
        for street_id in sorted(ids, key=lambda i: -self._geometry(i).length):
            part = max(self._geometry(street_id).geoms, key=lambda g: g.length)
            middle = part.interpolate(0.5, normalized=True)
            options.append(
                StreetMatch(
                    name=self._names[street_id],
                    key=self._keys[street_id],
                    level=level,
                    point=LatLon(middle.y, middle.x),
                    ids=(street_id,),
                    names=(self._names[street_id],),
                )
            )
        return options

    def street_names(self) -> list[str]:
        return sorted(self._names.values())

    def street_variants(self) -> dict[str, list[str]]:
        """Every common spelling (lower case) of every street, with the street names it
        stands for: the phrases to look for in a post's text."""
        found: dict[str, list[str]] = defaultdict(list)
        for variant, street_id in self._db.execute(
            "SELECT variant, street_id FROM street_variants ORDER BY variant, street_id"
        ):
            found[variant].append(self._names[street_id])
        return dict(found)

    def streets_near(self, lat: float, lon: float, radius_m: float = 50.0) -> list[str]:
        """Names of streets passing within `radius_m` of the point (R-tree, then geometry)."""
        dlat = radius_m / _EARTH_M_PER_DEG_LAT
        dlon = radius_m / (_EARTH_M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat)))
        rows = self._db.execute(
            "SELECT id FROM street_index WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?",
            (lon + dlon, lon - dlon, lat + dlat, lat - dlat),
        ).fetchall()
        local = _Local(lat, lon)
        here = local.point_m(lat, lon)
        found = [(local.to_m(self._geometry(i)).distance(here), self._names[i]) for (i,) in rows]
        return [name for distance, name in sorted(found) if distance <= radius_m]

    # -- intersections -------------------------------------------------------------------

    def intersection(self, a: str, b: str) -> Located | None:
        """Where two named streets meet: a node their ways share, else a near miss."""
        ids_a, _ = self._candidates(a)
        ids_b, _ = self._candidates(b)
        points: list[tuple[float, float]] = []
        pairs = [(x, y) for x in ids_a for y in ids_b if x != y]
        for x, y in pairs:
            points += self._db.execute(
                "SELECT lat, lon FROM intersections WHERE a = ? AND b = ?", (min(x, y), max(x, y))
            ).fetchall()
        if not points:
            return self._near_miss(pairs)
        clusters: list[list[tuple[float, float]]] = []
        for point in points:
            for cluster in clusters:
                if distance_m(*cluster[0], *point) <= _SAME_CROSSING_M:
                    cluster.append(point)
                    break
            else:
                clusters.append([point])
        best = max(clusters, key=len)
        lat = statistics.fmean(p[0] for p in best)
        lon = statistics.fmean(p[1] for p in best)
        return Located(lat, lon, "intersection", f"{a} & {b}")

    def _near_miss(self, pairs: list[tuple[int, int]]) -> Located | None:
        best: tuple[float, LatLon] | None = None
        for x, y in pairs:
            gx, gy = self._geometry(x), self._geometry(y)
            if not gx.envelope.buffer(0.001).intersects(gy.envelope):
                continue
            centre = gx.centroid
            local = _Local(centre.y, centre.x)
            mx, my = local.to_m(gx), local.to_m(gy)
            distance = mx.distance(my)
            if distance <= _NEAR_MISS_M and (best is None or distance < best[0]):
                line = shapely.shortest_line(mx, my)
                best = (distance, local.to_latlon(line.interpolate(0.5, normalized=True)))
        if best is None:
            return None
        return Located(
            best[1].lat,
            best[1].lon,
            "intersection",
            f"{self._names[pairs[0][0]]} & {self._names[pairs[0][1]]}",
        )

    # -- addresses -----------------------------------------------------------------------

    def address(self, number: int, street: str) -> Located | None:
        """A house number on a street: the address point OSM has ("address"), or one
        interpolated along the street from the address points it has and the block
        numbering ("address_interpolated"); None when neither is possible."""
        ids, _ = self._candidates(street)
        if not ids:
            return None
        keys = [self._keys[i] for i in ids]
        marks = ",".join("?" * len(keys))
        exact = self._db.execute(
            f"SELECT lat, lon, housenumber, street FROM addresses "
            f"WHERE key IN ({marks}) AND number = ? ORDER BY housenumber != ?",
            (*keys, number, str(number)),
        ).fetchone()
        if exact is not None:
            return Located(exact[0], exact[1], "address", f"{exact[2]} {exact[3]}")
        guesses = [g for i in ids if (g := self._interpolate(i, number)) is not None]
        if not guesses:
            return None
        _, point = min(guesses, key=lambda g: g[0])
        return Located(
            point.lat, point.lon, "address_interpolated", f"{number} {self._names[ids[0]]}"
        )

    def _interpolate(self, street_id: int, number: int) -> tuple[float, LatLon] | None:
        """(numbers spanned, point) of the best interpolation on one street, or None.

        First from the street's own address points; when they leave the number more
        than two blocks from a known one, from the block numbering the street shares
        with its neighbours: address points of nearby parallel streets with the same
        directional, projected onto this street (a hundred-block runs across the grid).
        With none of these, from the numbers of the streets that cross it (`_axis`).
        """
        rows = self._db.execute(
            "SELECT number, lat, lon FROM addresses WHERE key = ?", (self._keys[street_id],)
        ).fetchall()
        geometry = self._geometry(street_id)
        centre = geometry.centroid
        local = _Local(centre.y, centre.x)
        merged = ops.linemerge(local.to_m(geometry))
        parts = list(merged.geoms) if hasattr(merged, "geoms") else [merged]
        best: tuple[float, LatLon] | None = None
        for part in parts:
            assert isinstance(part, LineString)
            along = []
            for n, lat, lon in rows:
                p = local.point_m(lat, lon)
                if part.distance(p) <= _ON_STREET_M:
                    along.append((n, part.project(p)))
            guess = self._along(along, number, part.length)
            if guess is None or guess[0] > 2 * self.block_size:
                grid = self._grid(street_id, part, local, number)
                if grid is not None and (guess is None or grid[0] < guess[0]):
                    guess = grid
            if guess is None:
                guess = self._blocks(street_id, part, local, number)
            if guess is None or (best is not None and guess[0] >= best[0]):
                continue
            point = part.interpolate(guess[1])
            if not _contradicted(number, point, rows, local, self.block_size):
                best = (guess[0], local.to_latlon(point))
        if best is None:
            best = self._axis(street_id, number)
        return best

    def _grid(
        self, street_id: int, part: LineString, local: _Local, number: int
    ) -> tuple[float, float] | None:
        """(score, distance along `part`) for `number` from parallel neighbours' numbers."""
        block = self.block_size
        minx, miny, maxx, maxy = part.bounds
        south_west = local.to_latlon(Point(minx - _GRID_REACH_M, miny - _GRID_REACH_M))
        north_east = local.to_latlon(Point(maxx + _GRID_REACH_M, maxy + _GRID_REACH_M))
        rows = self._db.execute(
            "SELECT a.key, a.number, a.lat, a.lon FROM address_index i "
            "JOIN addresses a ON a.rowid = i.id "
            "WHERE i.minx >= ? AND i.maxx <= ? AND i.miny >= ? AND i.maxy <= ? "
            "AND a.number BETWEEN ? AND ?",
            (
                south_west.lon,
                north_east.lon,
                south_west.lat,
                north_east.lat,
                number - _GRID_BLOCKS * block,
                number + _GRID_BLOCKS * block,
            ),
        ).fetchall()
        heading = _heading(part)
        parallel: dict[str, bool] = {}
        pooled: list[tuple[int, float]] = []
        for key, n, lat, lon in rows:
            if key not in parallel:
                other = self._by_key.get(key)
                parallel[key] = (
                    other is not None
                    and self._pre[other] == self._pre[street_id]
                    and (
                        other == street_id
                        or _angle(heading, _heading(local.to_m(self._geometry(other))))
                        <= _PARALLEL_DEG
                    )
                )
            if not parallel[key]:
                continue
            p = local.point_m(lat, lon)
            d = part.project(p)
            if 1.0 < d < part.length - 1.0 and part.distance(p) <= _GRID_REACH_M:
                pooled.append((n, d))
        numbers = sorted({n for n, _ in pooled})
        if len(pooled) < 3 or len(numbers) < 2:
            return None
        if numbers[0] > number + block or numbers[-1] < number - block:
            return None  # not around the number asked
        fit = statistics.linear_regression([n for n, _ in pooled], [d for _, d in pooled])
        if fit.slope == 0.0:
            return None
        d = fit.intercept + fit.slope * number
        if not -_ON_STREET_M <= d <= part.length + _ON_STREET_M:
            return None
        return (3 * block, min(max(d, 0.0), part.length))

    def _blocks(
        self, street_id: int, part: LineString, local: _Local, number: int
    ) -> tuple[float, float] | None:
        """(score, distance along `part`) for `number` by counting blocks.

        Numbers start where the street meets its namesake with the opposite directional
        (N Clinton St meets S Clinton St on the line numbers count from) and go up by a
        block's worth at every street that crosses it.
        """
        pre = self._pre[street_id]
        opposite = _OPPOSITE.get(pre)
        if opposite is None:
            return None
        base = self._keys[street_id][len(pre) + 1 :]
        other = self._by_key.get(f"{opposite} {base}")
        if other is None:
            return None
        zeros = self._db.execute(
            "SELECT lat, lon FROM intersections WHERE a = ? AND b = ?",
            (min(street_id, other), max(street_id, other)),
        ).fetchall()
        if not zeros:
            return None
        zero = local.point_m(*zeros[0])
        if part.distance(zero) > _NEAR_MISS_M:
            return None
        d0 = part.project(zero)
        forward = d0 < part.length / 2
        crossings = self._db.execute(
            "SELECT i.lat, i.lon, s.key FROM intersections i JOIN streets s "
            "ON s.id = (CASE WHEN i.a = ? THEN i.b ELSE i.a END) WHERE i.a = ? OR i.b = ?",
            (street_id, street_id, street_id),
        ).fetchall()
        marks: list[float] = []
        for lat, lon, key in crossings:
            if key.rsplit(" ", 1)[-1] in _NOT_BLOCK_ENDS or key.endswith(base):
                continue
            p = local.point_m(lat, lon)
            if part.distance(p) > _NEAR_MISS_M:
                continue
            offset = (part.project(p) - d0) * (1 if forward else -1)
            if offset > _NEAR_MISS_M:
                marks.append(offset)
        ends = [0.0]
        for offset in sorted(marks):
            if offset - ends[-1] > _SAME_BLOCK_END_M:
                ends.append(offset)
        block, within = divmod(number, self.block_size)
        if block + 1 >= len(ends):
            return None
        offset = ends[block] + (ends[block + 1] - ends[block]) * within / self.block_size
        return (4 * self.block_size, d0 + offset if forward else d0 - offset)

    def _axis(self, street_id: int, number: int) -> tuple[float, LatLon] | None:
        """(score, point) for `number` from the numbers of the streets that cross it.

        A grid's cross street sits at the same hundred-block on every street of one
        directional (East Preston Street is the 1300 block of every North street it
        crosses): that number is read from the address points other streets have near
        their crossing with it (`_calibrate`). Along the street's main direction (so
        that the pieces of a street the extract holds in parts count together), a line
        is fitted through the crossings near the number (`_fit_near`); with too few of
        them, the number is carried from the nearest crossing at the city's metres per
        number (`_carry`). The cross street's directional twin stands in for it when it
        has no number of its own (`_twin`). The point is where the street reaches that
        position along its axis (`_at_axis`). A street with no directional takes the
        first directional whose crossings fit.
        """
        pre = self._pre[street_id]
        geometry = self._geometry(street_id)
        centre = geometry.centroid
        local = _Local(centre.y, centre.x)
        line = local.to_m(geometry)
        coords = np.array([c for part in line.geoms for c in part.coords])
        if len(coords) < 2:
            return None
        mean = coords.mean(axis=0)
        _, vectors = np.linalg.eigh(np.cov((coords - mean).T))
        u = vectors[:, -1]  # the direction the street runs
        crossings = self._db.execute(
            "SELECT lat, lon, CASE WHEN a = ? THEN b ELSE a END FROM intersections "
            "WHERE a = ? OR b = ?",
            (street_id, street_id, street_id),
        ).fetchall()
        block = self.block_size
        for numbering in [pre] if pre else list(_OPPOSITE):
            rising = float(u @ _RISING[numbering])  # > 0: numbers rise along u
            if abs(rising) < 0.5:
                continue  # the street does not run the way this numbering counts
            anchors: list[tuple[float, float]] = []
            for lat, lon, other in crossings:
                value = self._calibration(other, numbering)
                if value is None and (twin := self._twin(other)) is not None:
                    value = self._calibration(twin, numbering)
                if value is not None:
                    p = local.point_m(lat, lon)
                    anchors.append((value, float(u @ (np.array([p.x, p.y]) - mean))))
            x = _fit_near(anchors, number, rising, block)
            score = 5 * block
            if x is None and anchors:
                x = self._carry(anchors, number, rising, numbering)
                score = 6 * block
            if x is None:
                continue
            point = _at_axis(line, mean, u, x)
            if point is None:
                continue
            return (score, local.to_latlon(point))
        return None

    def _carry(
        self, anchors: list[tuple[float, float]], number: int, rising: float, pre: str
    ) -> float | None:
        """Where `number` falls along a street's axis, carried from the crossing whose
        number is nearest at the city's metres per number (`_metres_per_number`): for
        numbers the crossings near them do not pin down."""
        rate = self._metres_per_number(pre)
        if rate is None:
            return None
        n0, _ = min(anchors, key=lambda a: (abs(a[0] - number), a[0]))
        at = statistics.fmean(x for n, x in anchors if n == n0)
        return at + (number - n0) * math.copysign(rate, rising)

    def _twin(self, street_id: int) -> int | None:
        """The namesake with the opposite directional (S Wolfe St for N Wolfe St): the
        same line of the grid, so it crosses every street at the same hundred-block."""
        pre = self._pre[street_id]
        opposite = _OPPOSITE.get(pre)
        if opposite is None:
            return None
        return self._by_key.get(f"{opposite} {self._keys[street_id][len(pre) + 1 :]}")

    def _metres_per_number(self, pre: str) -> float | None:
        """Metres a house number spans on streets of directional `pre` (blocks differ in
        length north-south and east-west), the median over such streets whose address
        points and numbering line (where they meet their opposite namesake) the
        gazetteer has; over every directional when those of `pre` have none."""
        if self._rates is None:
            self._rates = self._measure_rates()
        return self._rates.get(pre) or self._rates.get("")

    def _measure_rates(self) -> dict[str, float]:
        rates: dict[str, list[float]] = defaultdict(list)
        for street_id, pre in self._pre.items():
            twin = self._twin(street_id)
            if twin is None:
                continue
            zero = self._db.execute(
                "SELECT lat, lon FROM intersections WHERE a = ? AND b = ?",
                (min(street_id, twin), max(street_id, twin)),
            ).fetchone()
            rows = self._db.execute(
                "SELECT number, lat, lon FROM addresses WHERE key = ? AND number >= ?",
                (self._keys[street_id], self.block_size),
            ).fetchall()
            if zero is None or not rows:
                continue
            rates[pre] += [distance_m(zero[0], zero[1], lat, lon) / n for n, lat, lon in rows]
        medians = {pre: statistics.median(values) for pre, values in rates.items()}
        everything = [rate for values in rates.values() for rate in values]
        if everything:
            medians[""] = statistics.median(everything)
        return medians

    def _calibrate(self, street_id: int, pre: str) -> float | None:
        """The house number of `pre` streets (n, s, e, w) where they cross this one: the
        median over its crossings with such streets of the number their address points
        near the crossing give (a line fitted along the street); 0 where two namesakes
        of opposite directionals meet on it (the line numbers count from)."""
        values: list[float] = []
        opposite = _OPPOSITE.get(pre)
        for lat, lon, other in self._db.execute(
            "SELECT lat, lon, CASE WHEN a = ? THEN b ELSE a END FROM intersections "
            "WHERE a = ? OR b = ?",
            (street_id, street_id, street_id),
        ):
            if self._pre[other] != pre or other == street_id:
                continue
            key = self._keys[other]
            base = key[len(pre) + 1 :]
            if opposite is not None and f"{opposite} {base}" in self._by_key:
                twin = self._by_key[f"{opposite} {base}"]
                meets = self._db.execute(
                    "SELECT lat, lon FROM intersections WHERE a = ? AND b = ?",
                    (min(other, twin), max(other, twin)),
                ).fetchall()
                if any(distance_m(lat, lon, *m) <= _NEAR_MISS_M for m in meets):
                    values.append(0.0)
                    continue
            value = self._number_at(other, lat, lon)
            if value is not None:
                values.append(value)
        return statistics.median(values) if values else None

    def _number_at(self, street_id: int, lat: float, lon: float) -> float | None:
        """The house number at a point of a street, from its address points nearby."""
        dlat = _CALIBRATION_M / _EARTH_M_PER_DEG_LAT
        dlon = _CALIBRATION_M / (_EARTH_M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat)))
        rows = self._db.execute(
            "SELECT a.number, a.lat, a.lon FROM address_index i "
            "JOIN addresses a ON a.rowid = i.id "
            "WHERE i.minx >= ? AND i.maxx <= ? AND i.miny >= ? AND i.maxy <= ? AND a.key = ?",
            (lon - dlon, lon + dlon, lat - dlat, lat + dlat, self._keys[street_id]),
        ).fetchall()
        if len({n for n, _, _ in rows}) < 2:
            return None
        local = _Local(lat, lon)
        geometry = local.to_m(self._geometry(street_id))
        here = local.point_m(lat, lon)
        points = [(n, geometry.project(local.point_m(a, b))) for n, a, b in rows]
        fit = statistics.linear_regression([d for _, d in points], [n for n, _ in points])
        value = fit.intercept + fit.slope * geometry.project(here)
        return value if value >= 0 else None

    def _along(
        self, along: list[tuple[int, float]], number: int, length: float
    ) -> tuple[float, float] | None:
        """(numbers spanned, distance along the line) for `number`, from known (n, d)."""
        if not along:
            return None
        same_side = [a for a in along if a[0] % 2 == number % 2]
        points = same_side if len({n for n, _ in same_side}) >= 2 else along
        below = [a for a in points if a[0] < number]
        above = [a for a in points if a[0] > number]
        if below and above:
            n0, d0 = max(below)
            n1, d1 = min(above)
            return (n1 - n0, d0 + (d1 - d0) * (number - n0) / (n1 - n0))
        by_number: dict[int, list[float]] = defaultdict(list)
        for n, d in points:
            by_number[n].append(d)
        nearest = min(by_number, key=lambda n: abs(n - number))
        d_near = statistics.fmean(by_number[nearest])
        block = self.block_size
        if len(by_number) >= 2:
            # Beyond the known numbers: carry on at the rate the known ones show, but no
            # farther than a block, and never off the end of the street.
            ns = sorted(by_number)
            ds = [statistics.fmean(by_number[n]) for n in ns]
            slope = statistics.linear_regression(ns, ds).slope if len(set(ns)) > 1 else 0.0
            if abs(number - nearest) > block or slope == 0.0:
                return None
            d = d_near + slope * (number - nearest)
            if -_ON_STREET_M <= d <= length + _ON_STREET_M:
                return (2 * abs(number - nearest) + block, min(max(d, 0.0), length))
            return None
        # One known number: only its own block can be placed (within a block's length).
        if number // block == nearest // block:
            return (2 * block, d_near)
        return None

    # -- places, neighbourhoods, boundary -----------------------------------------------

    def place(self, name: str) -> Located | None:
        """A named place (park, station, stop, school, library, landmark, shop, …)."""
        key = place_key(name)
        rows = self._db.execute(
            "SELECT name, kind, lat, lon, polygon IS NOT NULL FROM places WHERE key = ? "
            "ORDER BY polygon IS NULL, id",
            (key,),
        ).fetchall()
        if not rows and key.startswith("the "):
            return self.place(name.split(" ", 1)[1])
        if not rows:
            return None
        place_name, kind, lat, lon, _ = rows[0]
        return Located(lat, lon, "place", f"{place_name} ({kind})")

    def place_names(self) -> list[str]:
        """The name of every place (parks, stations, stops, shops, …), once each."""
        return [r[0] for r in self._db.execute("SELECT DISTINCT name FROM places ORDER BY name")]

    def neighbourhood_names(self) -> list[str]:
        """The name of every neighbourhood."""
        return [r[0] for r in self._db.execute("SELECT name FROM neighbourhoods ORDER BY name")]

    def places_near(self, lat: float, lon: float, radius_m: float = 200.0) -> list[str]:
        """Names of places within `radius_m` of the point, nearest first (R-tree)."""
        dlat = radius_m / _EARTH_M_PER_DEG_LAT
        dlon = radius_m / (_EARTH_M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat)))
        rows = self._db.execute(
            "SELECT p.name, p.lat, p.lon FROM place_index i JOIN places p ON p.id = i.id "
            "WHERE i.minx <= ? AND i.maxx >= ? AND i.miny <= ? AND i.maxy >= ?",
            (lon + dlon, lon - dlon, lat + dlat, lat - dlat),
        ).fetchall()
        found = sorted((distance_m(lat, lon, plat, plon), n) for n, plat, plon in rows)
        return [n for d, n in found if d <= radius_m]

    def neighbourhood(self, name: str) -> Located | None:
        """A neighbourhood (place=neighbourhood, suburb or quarter) by name."""
        row = self._db.execute(
            "SELECT name, lat, lon FROM neighbourhoods WHERE key = ?", (place_key(name),)
        ).fetchone()
        if row is None:
            return None
        return Located(row[1], row[2], "neighbourhood", row[0])

    @property
    def has_boundary(self) -> bool:
        return self._boundary is not None

    def boundary_point(self) -> LatLon | None:
        """A point inside the city boundary (for a location known only to the city), or None
        when the gazetteer has no boundary."""
        if self._boundary is None:
            return None
        point = self._boundary.representative_point()
        return LatLon(point.y, point.x)

    def boundary_bounds(self) -> tuple[float, float, float, float]:
        """The city boundary's box: (west, south, east, north)."""
        if self._boundary is None:
            raise NoBoundary(f"{self.path} was built without a city boundary")
        west, south, east, north = self._boundary.bounds
        return west, south, east, north

    def contains(self, lat: float, lon: float) -> bool:
        """Whether the point lies inside the city boundary (edges count as inside)."""
        if self._boundary is None:
            raise NoBoundary(
                f"{self.path} was built without a city boundary "
                "(give --boundary or --admin-relation to `overheard gazetteer build`)"
            )
        return bool(self._boundary.covers(Point(lon, lat)))

    def counts(self) -> dict[str, int]:
        return {
            k.removeprefix("count_"): int(v) for k, v in self.meta.items() if k.startswith("count_")
        }
