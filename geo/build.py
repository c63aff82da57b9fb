"""`overheard gazetteer build`: an OSM extract (and a boundary) into one SQLite file.

The file is written beside the target under a temporary name and renamed into place
only when complete, so a failed build (a corrupt or truncated .pbf, say) leaves no
half-built gazetteer, and an existing one untouched.

`BUILD_VERSION` changes when a build puts something new in the file without changing
its format; a city's gazetteer built by an older version is built again on first use
(`overheard.geo.city`).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import shapely
from shapely.geometry import MultiLineString, Point, shape
from shapely.geometry.base import BaseGeometry

from overheard.geo.gazetteer import FORMAT_VERSION, SCHEMA
from overheard.geo.normalise import house_number, place_key, street_key, variants
from overheard.geo.osm_reader import Extract, Place, read_extract

#: 2: localities outside the city (named administrative areas) among the neighbourhoods.
BUILD_VERSION = 2
#: How far outside the boundary a locality's point must lie to be kept: the boundary is
#: generalised, and a clipped area's point may sit on the line it shares with the city.
LOCALITY_MARGIN_M = 250.0
_METRES_PER_DEGREE = 111_320.0


class GazetteerBuildError(Exception):
    """The gazetteer could not be built; the message says why and what to do."""


@dataclass(frozen=True)
class BuildReport:
    path: Path
    counts: dict[str, int]
    boundary_source: str | None
    seconds: float


def load_boundary_file(path: Path) -> BaseGeometry:
    """The union of the polygons in a GeoJSON file (FeatureCollection, Feature or geometry)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GazetteerBuildError(f"cannot read the boundary file {path}: {exc}") from exc
    if data.get("type") == "FeatureCollection":
        geometries = [f.get("geometry") for f in data.get("features", [])]
    elif data.get("type") == "Feature":
        geometries = [data.get("geometry")]
    else:
        geometries = [data]
    try:
        polygons = [shape(g) for g in geometries if g]
    except (ValueError, AttributeError, TypeError) as exc:
        raise GazetteerBuildError(f"{path} holds no valid GeoJSON geometry: {exc}") from exc
    polygons = [p for p in polygons if p.geom_type in ("Polygon", "MultiPolygon")]
    if not polygons:
        raise GazetteerBuildError(f"{path} holds no Polygon or MultiPolygon")
    union = shapely.union_all([shapely.make_valid(p) for p in polygons])
    return union


def _admin_boundary(extract: Extract, relation: str) -> tuple[BaseGeometry, str]:
    """The polygon of an administrative relation, given by id or by name, if it is whole."""

    def matches(osm_id: int, name: str) -> bool:
        return str(osm_id) == relation.lstrip("r") or name.casefold() == relation.casefold()

    for area in extract.admin_areas:
        if matches(area.osm_id, area.name):
            return area.polygon, f"relation {area.osm_id} ({area.name})"
    clipped = [f"{i} ({n})" for i, n in extract.admin_relations.items() if matches(i, n)]
    if clipped:
        raise GazetteerBuildError(
            f"the administrative relation {', '.join(clipped)} is not whole in the extract "
            "(its member ways are clipped), so no polygon can be built from it: give the "
            "boundary as a file with --boundary"
        )
    known = ", ".join(f"{i} ({n})" for i, n in sorted(extract.admin_relations.items()))
    raise GazetteerBuildError(
        f"no administrative relation {relation!r} in the extract; it holds: {known or 'none'}"
    )


def build_gazetteer(
    pbf: Path,
    out: Path,
    *,
    boundary: Path | None = None,
    admin_relation: str | None = None,
    block_size: int = 100,
) -> BuildReport:
    """Build the gazetteer of `pbf` into `out` (replaced atomically), and report counts."""
    started = time.perf_counter()
    if not pbf.is_file():
        raise GazetteerBuildError(f"no such file: {pbf}")
    if block_size <= 0:
        raise GazetteerBuildError("--block-size must be a positive number")
    city_boundary: BaseGeometry | None = None
    boundary_source: str | None = None
    if boundary is not None:
        city_boundary, boundary_source = load_boundary_file(boundary), f"file {boundary.name}"
    try:
        extract = read_extract(str(pbf))
    except RuntimeError as exc:
        raise GazetteerBuildError(
            f"{pbf} is not a readable OSM file (corrupt or truncated?): {exc}"
        ) from exc
    if not extract.ways:
        raise GazetteerBuildError(f"{pbf} holds no named streets (highway ways with a name)")
    if city_boundary is None and admin_relation is not None:
        city_boundary, boundary_source = _admin_boundary(extract, admin_relation)

    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(handle)
    try:
        counts = _write(Path(temporary), extract, city_boundary, boundary_source, pbf, block_size)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return BuildReport(out, counts, boundary_source, time.perf_counter() - started)


def _write(
    path: Path,
    extract: Extract,
    boundary: BaseGeometry | None,
    boundary_source: str | None,
    pbf: Path,
    block_size: int,
) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        db.executescript(SCHEMA)
        counts = _fill(db, extract, boundary)
        meta = {
            "format_version": str(FORMAT_VERSION),
            "build_version": str(BUILD_VERSION),
            "source": pbf.name,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "block_size": str(block_size),
            "boundary_source": boundary_source or "",
            **{f"count_{name}": str(value) for name, value in counts.items()},
        }
        db.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", meta.items())
        db.commit()
    finally:
        db.close()
    return counts


def _fill(
    db: sqlite3.Connection, extract: Extract, boundary: BaseGeometry | None
) -> dict[str, int]:
    # Streets: every named way under its key, merged into one MultiLineString.
    lines: dict[str, list[list[tuple[float, float]]]] = defaultdict(list)
    names: dict[str, Counter[str]] = defaultdict(Counter)
    node_streets: dict[int, set[str]] = defaultdict(set)
    node_location: dict[int, tuple[float, float]] = {}
    for way in extract.ways:
        key = street_key(way.name)
        if not key.key:
            continue
        lines[key.key].append(way.coords)
        names[key.key][way.name] += 1
        if len(way.refs) == len(way.coords):
            for ref, coord in zip(way.refs, way.coords, strict=True):
                node_streets[ref].add(key.key)
                node_location[ref] = coord
    street_ids: dict[str, int] = {}
    variant_rows: set[tuple[str, int]] = set()
    for street_id, (key_text, parts) in enumerate(sorted(lines.items()), start=1):
        name = names[key_text].most_common(1)[0][0]
        key = street_key(name)
        geometry = MultiLineString(parts)
        minx, miny, maxx, maxy = geometry.bounds
        db.execute(
            "INSERT INTO streets(id, key, base, core, name, geometry) VALUES (?, ?, ?, ?, ?, ?)",
            (street_id, key_text, key.base, key.core, name, shapely.to_wkb(geometry)),
        )
        db.execute(
            "INSERT INTO street_index(id, minx, maxx, miny, maxy) VALUES (?, ?, ?, ?, ?)",
            (street_id, minx, maxx, miny, maxy),
        )
        street_ids[key_text] = street_id
        for other_name in names[key_text]:
            variant_rows.update((v, street_id) for v in variants(other_name))
    db.executemany("INSERT INTO street_variants(variant, street_id) VALUES (?, ?)", variant_rows)

    # Intersections: nodes that ways of two or more streets share.
    crossings = set()
    for ref, keys in node_streets.items():
        if len(keys) < 2:
            continue
        lon, lat = node_location[ref]
        ids = sorted(street_ids[k] for k in keys)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                crossings.add((a, b, lat, lon))
    db.executemany("INSERT INTO intersections(a, b, lat, lon) VALUES (?, ?, ?, ?)", crossings)

    addresses = set()
    for address in extract.addresses:
        number = house_number(address.housenumber)
        if number is None:
            continue
        addresses.add(
            (
                street_key(address.street).key,
                number,
                address.housenumber.strip(),
                address.street,
                address.lat,
                address.lon,
            )
        )
    db.executemany(
        "INSERT INTO addresses(rowid, key, number, housenumber, street, lat, lon) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(i, *row) for i, row in enumerate(sorted(addresses), start=1)],
    )
    db.executemany(
        "INSERT INTO address_index(id, minx, maxx, miny, maxy) VALUES (?, ?, ?, ?, ?)",
        [(i, row[5], row[5], row[4], row[4]) for i, row in enumerate(sorted(addresses), start=1)],
    )

    places: dict[tuple[str, str, float], Place] = {}
    for place in extract.places:
        places.setdefault((place_key(place.name), place.kind, round(place.lat, 4)), place)
    for place_id, place in enumerate(places.values(), start=1):
        db.execute(
            "INSERT INTO places(id, key, name, kind, lat, lon, polygon) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                place_id,
                place_key(place.name),
                place.name,
                place.kind,
                place.lat,
                place.lon,
                shapely.to_wkb(place.polygon) if place.polygon is not None else None,
            ),
        )
        db.execute(
            "INSERT INTO place_index(id, minx, maxx, miny, maxy) VALUES (?, ?, ?, ?, ?)",
            (place_id, place.lon, place.lon, place.lat, place.lat),
        )
    neighbourhoods: dict[str, Place] = {}
    for hood in extract.neighbourhoods:
        known = neighbourhoods.get(place_key(hood.name))
        if known is None or (known.polygon is None and hood.polygon is not None):
            neighbourhoods[place_key(hood.name)] = hood
    localities = 0
    for locality in extract.localities if boundary is not None else ():
        key = place_key(locality.name)
        if key not in neighbourhoods and _well_outside(boundary, locality):
            neighbourhoods[key] = locality
            localities += 1
    db.executemany(
        "INSERT INTO neighbourhoods(key, name, kind, lat, lon, polygon) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                key,
                h.name,
                h.kind,
                h.lat,
                h.lon,
                shapely.to_wkb(h.polygon) if h.polygon is not None else None,
            )
            for key, h in neighbourhoods.items()
        ],
    )
    if boundary is not None:
        db.execute("INSERT INTO boundary(id, geometry) VALUES (1, ?)", (shapely.to_wkb(boundary),))
    return {
        "streets": len(street_ids),
        "street_variants": len(variant_rows),
        "intersections": len(crossings),
        "addresses": len(addresses),
        "places": len(places),
        "neighbourhoods": len(neighbourhoods),
        "localities_outside": localities,
        "boundary": int(boundary is not None),
    }


def _well_outside(boundary: BaseGeometry | None, place: Place) -> bool:
    """Whether a place lies outside the city by `LOCALITY_MARGIN_M` at least (a locality
    named in a post then makes it not local: "a pothole in Dundalk")."""
    if boundary is None:
        return False
    point = Point(place.lon, place.lat)
    if boundary.contains(point):
        return False
    # A degree of longitude is the shortest here, so this errs towards "too near".
    scale = _METRES_PER_DEGREE * math.cos(math.radians(place.lat))
    return boundary.distance(point) * scale >= LOCALITY_MARGIN_M
