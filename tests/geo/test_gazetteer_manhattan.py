"""The Manhattan extract (OSM, Jan 2025) builds and resolves: nothing is Baltimore-specific."""

from __future__ import annotations

import pytest

from overheard.geo.gazetteer import Gazetteer, NoBoundary, distance_m


@pytest.mark.parametrize(
    ("a", "b"),
    [("W 23rd St", "8th Ave"), ("West 23rd Street", "Eighth Avenue"), ("w 23rd st", "8TH AVE")],
)
def test_intersection(manhattan: Gazetteer, a: str, b: str) -> None:
    found = manhattan.intersection(a, b)
    assert found is not None
    # Eighth Avenue meets West 23rd Street at about 40.7454, -73.9984.
    assert distance_m(found.lat, found.lon, 40.7454, -73.9984) < 60


def test_address_and_place_agree(manhattan: Gazetteer) -> None:
    address = manhattan.address(350, "Fifth Avenue")
    building = manhattan.place("Empire State Building")
    assert address is not None and address.precision == "address"
    assert building is not None
    assert distance_m(address.lat, address.lon, building.lat, building.lon) < 100


def test_interpolated_address(manhattan: Gazetteer) -> None:
    found = manhattan.address(200, "W 23rd St")
    assert found is not None
    assert found.precision in ("address", "address_interpolated")
    crossing_7th = manhattan.intersection("W 23rd St", "7th Ave")
    crossing_8th = manhattan.intersection("W 23rd St", "8th Ave")
    assert crossing_7th is not None and crossing_8th is not None
    # The 200 block of West 23rd Street runs from Seventh to Eighth Avenue.
    span = distance_m(crossing_7th.lat, crossing_7th.lon, crossing_8th.lat, crossing_8th.lon)
    assert distance_m(found.lat, found.lon, crossing_7th.lat, crossing_7th.lon) < span
    assert distance_m(found.lat, found.lon, crossing_8th.lat, crossing_8th.lon) < span


@pytest.mark.parametrize("name", ["Chelsea", "Flatiron District", "Murray Hill", "Kips Bay"])
def test_neighbourhoods(manhattan: Gazetteer, name: str) -> None:
    found = manhattan.neighbourhood(name)
    assert found is not None
    assert 40.73 < found.lat < 40.76 and -74.02 < found.lon < -73.96


def test_places(manhattan: Gazetteer) -> None:
    park = manhattan.place("Madison Square Park")
    assert park is not None and "leisure=park" in park.name
    assert distance_m(park.lat, park.lon, 40.7420, -73.9876) < 150


def test_no_boundary_was_given(manhattan: Gazetteer) -> None:
    assert not manhattan.has_boundary
    with pytest.raises(NoBoundary, match="without a city boundary"):
        manhattan.contains(40.7454, -73.9984)
