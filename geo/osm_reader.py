"""Reading what the gazetteer needs out of an OpenStreetMap extract, with pyosmium.

One pass over the file with node locations and area assembly
(`osmium.FileProcessor(...).with_locations().with_areas()`) collects:

- named highway ways, with their node ids and coordinates;
- objects with `addr:housenumber` and `addr:street` (nodes; ways and areas at their centroid);
- named places (parks, stations, stops, schools, libraries, landmarks, shops, …);
- neighbourhoods (`place=neighbourhood|suburb|quarter`; nodes, and areas with their polygon);
- `boundary=administrative` areas that osmium could assemble whole;
- named administrative areas as localities (Dundalk, Rosedale: the places around a city
  that people name), at a point: inside the area when it is whole, else the middle of
  the member ways the extract holds (`Extract.localities`).

A relation whose member ways are clipped by the extract does not come out as an area:
that is how "the relation is whole" is decided.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import osmium
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

# Highways that are not streets one can stand on and name.
_SKIPPED_HIGHWAYS = frozenset({"proposed", "construction", "abandoned", "razed", "platform"})

# Tags that make a named object a place, in order of preference for its kind.
PLACE_TAGS: tuple[tuple[str, frozenset[str] | None], ...] = (
    (
        "leisure",
        frozenset(
            {
                "park",
                "playground",
                "garden",
                "pitch",
                "stadium",
                "sports_centre",
                "dog_park",
                "marina",
                "nature_reserve",
                "recreation_ground",
            }
        ),
    ),
    ("railway", frozenset({"station", "halt", "tram_stop", "subway_entrance"})),
    ("public_transport", frozenset({"station", "stop_position", "platform"})),
    ("highway", frozenset({"bus_stop"})),
    ("amenity", None),
    ("tourism", None),
    ("historic", None),
    ("shop", None),
    ("landuse", frozenset({"cemetery", "recreation_ground"})),
    ("natural", frozenset({"water", "beach", "wood"})),
    (
        "building",
        frozenset(
            {
                "school",
                "church",
                "hospital",
                "stadium",
                "train_station",
                "civic",
                "public",
                "university",
                "college",
            }
        ),
    ),
    ("man_made", frozenset({"pier", "lighthouse", "tower"})),
)
NEIGHBOURHOOD_PLACES = frozenset({"neighbourhood", "suburb", "quarter"})


@dataclass
class Way:
    name: str
    highway: str
    refs: list[int]
    coords: list[tuple[float, float]]  # (lon, lat)


@dataclass
class Address:
    street: str
    housenumber: str
    lon: float
    lat: float


@dataclass
class Place:
    name: str
    kind: str
    lon: float
    lat: float
    polygon: BaseGeometry | None = None


@dataclass
class AdminArea:
    osm_id: int
    name: str
    admin_level: str
    polygon: BaseGeometry


@dataclass
class Extract:
    """What an OSM extract holds for the gazetteer."""

    ways: list[Way] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)
    neighbourhoods: list[Place] = field(default_factory=list)
    admin_areas: list[AdminArea] = field(default_factory=list)
    admin_relations: dict[int, str] = field(default_factory=dict)  # every one, whole or not
    localities: list[Place] = field(default_factory=list)
    node_count: int = 0
    # Member ways of the administrative relations, and their coordinates where the
    # extract holds them (boundary ways are tagged boundary=administrative too).
    _admin_members: dict[int, tuple[str, list[int]]] = field(default_factory=dict)
    _boundary_ways: dict[int, list[tuple[float, float]]] = field(default_factory=dict)


def _place_kind(tags: Any) -> str | None:
    for key, values in PLACE_TAGS:
        value = tags.get(key)
        if value is not None and (values is None or value in values):
            return f"{key}={value}"
    return None


def _area_polygon(area: Any) -> BaseGeometry | None:
    polygons = []
    for outer in area.outer_rings():
        shell = [(n.lon, n.lat) for n in outer]
        holes = [[(n.lon, n.lat) for n in inner] for inner in area.inner_rings(outer)]
        if len(shell) >= 4:
            polygons.append(Polygon(shell, holes))
    if not polygons:
        return None
    geometry: BaseGeometry = polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    return geometry


def _centroid(coords: Iterable[tuple[float, float]]) -> tuple[float, float] | None:
    points = list(coords)
    if not points:
        return None
    return (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))


def read_extract(path: str) -> Extract:
    """Everything the gazetteer needs from one .osm.pbf (or .osm/.osm.bz2) file.

    Raises RuntimeError (from libosmium) when the file is corrupt or truncated.
    """
    extract = Extract()
    processor = osmium.FileProcessor(path).with_locations().with_areas()
    for obj in processor:
        if isinstance(obj, osmium.osm.Node):
            extract.node_count += 1
            if not len(obj.tags) or not obj.location.valid():
                continue
            _tagged_point(extract, obj.tags, obj.location.lon, obj.location.lat)
        elif isinstance(obj, osmium.osm.Way):
            _way(extract, obj)
        elif isinstance(obj, osmium.osm.Relation):
            if obj.tags.get("boundary") == "administrative":
                extract.admin_relations[obj.id] = obj.tags.get("name") or ""
                ways = [m.ref for m in obj.members if m.type == "w"]
                extract._admin_members[obj.id] = (obj.tags.get("admin_level") or "", ways)
        elif isinstance(obj, osmium.osm.Area):
            _area(extract, obj)
    extract.localities = _localities(extract)
    return extract


def _localities(extract: Extract) -> list[Place]:
    """Every named administrative relation at a point, its kind `admin_level=N`."""
    whole = {area.osm_id: area for area in extract.admin_areas}
    localities = []
    for osm_id, (level, ways) in sorted(extract._admin_members.items()):
        name = extract.admin_relations.get(osm_id)
        if not name:
            continue
        if osm_id in whole:
            point = whole[osm_id].polygon.representative_point()
            lon, lat = point.x, point.y
        else:
            centre = _centroid(c for w in ways for c in extract._boundary_ways.get(w, ()))
            if centre is None:
                continue
            lon, lat = centre
        localities.append(Place(name, f"admin_level={level}", lon, lat))
    return localities


def _tagged_point(extract: Extract, tags: Any, lon: float, lat: float) -> None:
    street, number = tags.get("addr:street"), tags.get("addr:housenumber")
    if street and number:
        extract.addresses.append(Address(street, number, lon, lat))
    name = tags.get("name")
    if not name:
        return
    if tags.get("place") in NEIGHBOURHOOD_PLACES:
        extract.neighbourhoods.append(Place(name, f"place={tags['place']}", lon, lat))
        return
    kind = _place_kind(tags)
    if kind:
        extract.places.append(Place(name, kind, lon, lat))


def _way(extract: Extract, way: Any) -> None:
    tags = way.tags
    name, highway = tags.get("name"), tags.get("highway")
    coords = [(n.lon, n.lat) for n in way.nodes if n.location.valid()]
    if name and highway and highway not in _SKIPPED_HIGHWAYS and len(coords) >= 2:
        extract.ways.append(Way(name, highway, [n.ref for n in way.nodes], coords))
    if tags.get("boundary") == "administrative":
        extract._boundary_ways[way.id] = coords
    street, number = tags.get("addr:street"), tags.get("addr:housenumber")
    if street and number and not way.is_closed():
        # Closed ways come back as areas, where they are counted once.
        centre = _centroid(coords)
        if centre:
            extract.addresses.append(Address(street, number, *centre))


def _area(extract: Extract, area: Any) -> None:
    tags = area.tags
    street, number, name = tags.get("addr:street"), tags.get("addr:housenumber"), tags.get("name")
    wanted_admin = tags.get("boundary") == "administrative" and not area.from_way()
    neighbourhood = tags.get("place") in NEIGHBOURHOOD_PLACES
    kind = _place_kind(tags) if name else None
    if not ((street and number) or wanted_admin or (name and (neighbourhood or kind))):
        return
    polygon = _area_polygon(area)
    if polygon is None or polygon.is_empty:
        return
    point = polygon.representative_point()
    if street and number:
        extract.addresses.append(Address(street, number, point.x, point.y))
    if wanted_admin:
        extract.admin_areas.append(
            AdminArea(area.orig_id(), name or "", tags.get("admin_level", ""), polygon)
        )
    elif name and neighbourhood:
        extract.neighbourhoods.append(
            Place(name, f"place={tags['place']}", point.x, point.y, polygon)
        )
    elif name and kind:
        extract.places.append(Place(name, kind, point.x, point.y, polygon))
