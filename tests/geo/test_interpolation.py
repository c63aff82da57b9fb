"""House numbers the extract has no address points for, placed from the numbers of the
streets that cross them, on the real Baltimore extract and 311 requests."""

from __future__ import annotations

import numpy as np
from shapely.geometry import MultiLineString

from overheard.geo.gazetteer import Gazetteer, _at_axis, distance_m
from tests.benchmarks.geo_gazetteer import read_311, score_311
from tests.geo.shared_data import BALTIMORE_311, need


def street_id(gazetteer: Gazetteer, name: str) -> int:
    ids, _ = gazetteer._candidates(name)
    assert len(ids) == 1
    return ids[0]


def test_the_numbering_line_is_found_from_the_data(baltimore: Gazetteer) -> None:
    # North and South streets meet their namesakes on Baltimore Street: zero there.
    assert baltimore._calibration(street_id(baltimore, "E Baltimore St"), "n") == 0.0
    assert baltimore._calibration(street_id(baltimore, "E Fayette St"), "n") != 0.0


def test_a_street_without_address_points(baltimore: Gazetteer) -> None:
    need(BALTIMORE_311)
    # Mura Street has no address point in the extract and no directional; 311 row 2725.
    mura = street_id(baltimore, "Mura St")
    assert not baltimore._db.execute(
        "SELECT 1 FROM addresses WHERE key = ?", (baltimore._keys[mura],)
    ).fetchone()
    found = baltimore.address(2725, "Mura St")
    assert found is not None and found.precision == "address_interpolated"
    assert distance_m(found.lat, found.lon, 39.3053003334761, -76.579109056395) < 50


def test_a_guess_the_street_s_own_numbers_contradict(baltimore: Gazetteer) -> None:
    # Eastern Avenue's 6900 block lies at the city line; parallel streets there carry
    # low numbers of their own. 719 (311: 39.28481, -76.60518, Inner Harbor) was once
    # placed there, 6.5 km away.
    found = baltimore.address(719, "Eastern Ave")
    assert found is None or distance_m(found.lat, found.lon, 39.28481, -76.60518) < 300


def test_311_address_figures(baltimore: Gazetteer) -> None:
    need(BALTIMORE_311)
    address = score_311(baltimore, read_311())["address"]
    print(address.as_dict())
    # Before the crossings' numbers were used: 193 of 328 (59%), median 34 m; before the
    # twins, the carry and the bend-following axis: 223 (68%).
    assert address.covered == 328
    assert address.resolved >= 260  # 264 when written
    assert address.median() < 45  # 39.4 m
    # Of the 288 whose street the extract holds where the request is: 263 (91%).
    assert address.held == 288
    assert address.held_share >= 0.9


def test_a_cross_street_s_twin_gives_its_number(baltimore: Gazetteer) -> None:
    # North Wolfe Street has no East number of its own in the extract; South Wolfe
    # Street, the same line of the grid, has one (the 1900 block, near enough).
    north, south = street_id(baltimore, "N Wolfe St"), street_id(baltimore, "S Wolfe St")
    assert baltimore._twin(north) == south and baltimore._twin(south) == north
    assert baltimore._calibration(north, "e") is None
    value = baltimore._calibration(south, "e")
    assert value is not None and 1850 <= value <= 2000


def test_a_number_beyond_the_known_crossings_is_carried(baltimore: Gazetteer) -> None:
    need(BALTIMORE_311)
    # No crossing of East Lombard Street east of Patterson Park has a number in the
    # extract; 3800 is carried from the nearest at the city's metres per number.
    # 311: 3800 E LOMBARD ST (39.29175, -76.56341), six requests.
    found = baltimore.address(3800, "E Lombard St")
    assert found is not None and found.precision == "address_interpolated"
    assert distance_m(found.lat, found.lon, 39.2917497168221, -76.5634060543801) < 250


def test_the_axis_follows_a_street_that_bends() -> None:
    # An L-shaped street: 0..100 east, then 100 north. Its principal axis runs
    # diagonally, and a straight line along it would miss the street by far more than
    # a house's width; the point must lie on the street itself.
    line = MultiLineString([[(0.0, 0.0), (100.0, 0.0), (100.0, 100.0)]])
    mean = np.array([66.7, 33.3])
    u = np.array([1.0, 1.0]) / np.sqrt(2)
    point = _at_axis(line, mean, u, 0.0)
    assert point is not None and line.distance(point) < 1e-6
    assert point.x == 100.0 or point.y == 0.0
    assert _at_axis(line, mean, u, 500.0) is None  # far past the end
