"""Lookups in the gazetteer built from the real Baltimore extract (OSM, Feb 2015)."""

from __future__ import annotations

import csv

import pytest

from overheard.geo.gazetteer import Gazetteer, distance_m
from tests.benchmarks.geo_gazetteer import read_311, score_311
from tests.geo.shared_data import BALTIMORE_311, need

# The extract's bbox.
WEST, SOUTH, EAST, NORTH = -76.664, 39.219, -76.482, 39.347


def inside_bbox(lat: float, lon: float) -> bool:
    return SOUTH <= lat <= NORTH and WEST <= lon <= EAST


@pytest.mark.parametrize("name", ["Eastern Avenue", "eastern ave", "EASTERN AV", "Eastern Ave."])
def test_street_variants_find_eastern_avenue(baltimore: Gazetteer, name: str) -> None:
    match = baltimore.street(name)
    assert match is not None
    assert match.name == "Eastern Avenue"
    assert inside_bbox(match.point.lat, match.point.lon)


@pytest.mark.parametrize("name", ["E Fayette St", "East Fayette Street", "E. FAYETTE ST"])
def test_directional_and_suffix_variants(baltimore: Gazetteer, name: str) -> None:
    match = baltimore.street(name)
    assert match is not None
    assert (match.name, match.level) == ("East Fayette Street", "key")


def test_looser_levels(baltimore: Gazetteer) -> None:
    fleet = baltimore.street("Fleet")
    assert fleet is not None and (fleet.name, fleet.level) == ("Fleet Street", "core")
    ponca = baltimore.street("Ponca St")
    assert ponca is not None and ponca.level == "base" and "South Ponca Street" in ponca.names


def test_variants_to_look_for_in_text(baltimore: Gazetteer) -> None:
    found = baltimore.street_variants()
    assert found["east fayette street"] == ["East Fayette Street"]
    assert found["e fayette st"] == ["East Fayette Street"]
    assert "South Ponca Street" in found["ponca"]
    assert found["saint helena ave"] == found["st helena avenue"] == ["Saint Helena Avenue"]


def test_another_directional_is_not_a_match(baltimore: Gazetteer) -> None:
    # The extract holds East Fayette Street only: West Fayette Street is not it.
    assert baltimore.street("W Fayette St") is None
    assert baltimore.street("Nowhere Boulevard") is None


def test_intersection_of_fleet_and_ponca(baltimore: Gazetteer) -> None:
    found = baltimore.intersection("Fleet St", "S Ponca St")
    assert found is not None and found.precision == "intersection"
    loose = baltimore.intersection("Fleet", "Ponca")
    assert loose is not None
    assert distance_m(found.lat, found.lon, loose.lat, loose.lon) < 1
    # Fleet Street and South Ponca Street meet at about 39.2861, -76.5549.
    assert distance_m(found.lat, found.lon, 39.2861, -76.5549) < 50


def test_streets_that_do_not_meet(baltimore: Gazetteer) -> None:
    assert baltimore.intersection("Fleet St", "East Biddle Street") is None


def test_address_point_from_osm(baltimore: Gazetteer) -> None:
    found = baltimore.address(1712, "Eastern Ave")
    assert found is not None and found.precision == "address"
    assert distance_m(found.lat, found.lon, 39.2857438, -76.5925918) < 1


def test_address_interpolated_between_neighbours(baltimore: Gazetteer) -> None:
    # OSM has 1712 and 1716 Eastern Avenue, not 1714.
    found = baltimore.address(1714, "Eastern Avenue")
    assert found is not None and found.precision == "address_interpolated"
    assert distance_m(found.lat, found.lon, 39.2857438, -76.5925918) < 15
    assert distance_m(found.lat, found.lon, 39.285744, -76.592494) < 15


def test_address_from_block_numbering_of_parallel_streets(baltimore: Gazetteer) -> None:
    # OSM has no address on East Chase Street; its neighbours' numbers place the
    # 311 request "2700 E CHASE ST" (39.30395, -76.57963).
    found = baltimore.address(2700, "E Chase St")
    assert found is not None and found.precision == "address_interpolated"
    assert distance_m(found.lat, found.lon, 39.3039549, -76.5796324) < 60


def test_address_by_counting_blocks_from_the_zero_line(baltimore: Gazetteer) -> None:
    # North Caroline Street has one OSM address; numbers count from where it meets
    # South Caroline Street, a block at each crossing street. The 311 request
    # "1306 N CAROLINE ST" is at 39.30545, -76.59830.
    found = baltimore.address(1306, "N Caroline St")
    assert found is not None and found.precision == "address_interpolated"
    assert distance_m(found.lat, found.lon, 39.3054546, -76.5983006) < 60


def test_address_beyond_what_the_street_shows(baltimore: Gazetteer) -> None:
    assert baltimore.address(99_999, "Eastern Avenue") is None
    assert baltimore.address(10, "Nowhere Boulevard") is None


def test_places(baltimore: Gazetteer) -> None:
    park = baltimore.place("Patterson Park")
    assert park is not None and "leisure=park" in park.name
    # The park lies between Eastern Ave and E Baltimore St, Patterson Park Ave and Ellwood Ave.
    assert 39.284 < park.lat < 39.293 and -76.587 < park.lon < -76.571
    assert "Patterson Park" in baltimore.places_near(park.lat, park.lon, 300)
    assert baltimore.place("the Patterson Park") == park
    assert baltimore.place("Nowhere Park") is None


@pytest.mark.parametrize("name", ["Canton", "Fells Point", "Highlandtown", "Little Italy"])
def test_neighbourhoods(baltimore: Gazetteer, name: str) -> None:
    found = baltimore.neighbourhood(name)
    assert found is not None and found.name == name
    assert inside_bbox(found.lat, found.lon)
    assert baltimore.contains(found.lat, found.lon)


def test_streets_near_a_point(baltimore: Gazetteer) -> None:
    crossing = baltimore.intersection("Fleet St", "S Ponca St")
    assert crossing is not None
    near = baltimore.streets_near(crossing.lat, crossing.lon, 20)
    assert {"Fleet Street", "South Ponca Street"} <= set(near)


CITY = {"BC", "Baltimore City"}


def town(row: dict[str, str]) -> str:
    return row["Address"].split(",")[1].strip()


def test_boundary_with_311_rows(baltimore: Gazetteer) -> None:
    need(BALTIMORE_311)
    with BALTIMORE_311.open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["Latitude"] not in ("", "NA")]
    # Baltimore County rows: no city Neighborhood, and a county place as the town.
    county = [r for r in rows if not r["Neighborhood"].strip() and town(r) not in CITY]
    city = [r for r in rows if town(r) in CITY]
    assert len(county) >= 5 and len(city) > 1000
    assert {"DUNDALK", "ROSEDALE"} <= {town(r) for r in county}
    for row in county:
        assert not baltimore.contains(float(row["Latitude"]), float(row["Longitude"])), row
    inside = [baltimore.contains(float(r["Latitude"]), float(r["Longitude"])) for r in city]
    assert all(inside)
    assert baltimore.meta["boundary_source"] == "file baltimore_city.geojson"


def test_311_accuracy_sanity(baltimore: Gazetteer) -> None:
    """Generous bounds only; the benchmark reports the figures."""
    need(BALTIMORE_311)
    scores = score_311(baltimore, read_311())
    crossings, addresses = scores["intersection"], scores["address"]
    assert crossings.covered >= 25 and addresses.covered >= 250
    assert crossings.share >= 0.7 and crossings.median() < 150
    assert addresses.share >= 0.45 and addresses.median() < 150
    assert addresses.by_precision.get("address_interpolated", 0) > 0
