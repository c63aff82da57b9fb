"""House numbers the extract has no address points for, placed from the numbers of the
streets that cross them, on the real Baltimore extract and 311 requests."""

from __future__ import annotations

from overheard.geo.gazetteer import Gazetteer, distance_m
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
    # Before the crossings' numbers were used: 193 of 328 (59%), median 34 m.
    assert address.covered == 328
    assert address.resolved >= 220  # 223 when written
    assert address.median() < 40
