from __future__ import annotations

import pytest

from overheard.geo.normalise import house_number, place_key, street_key, variants


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("East Fayette Street", "e fayette st"),
        ("E. Fayette St", "e fayette st"),
        ("E FAYETTE ST", "e fayette st"),
        ("Eastern Avenue", "eastern ave"),
        ("eastern av", "eastern ave"),
        ("North Broadway", "n broadway"),
        ("Broadway", "broadway"),
        ("East Street", "east st"),  # a directional alone before the suffix is the name
        ("North Avenue", "north ave"),
        ("South East Avenue", "s east ave"),
        ("West Twenty-Third Street", "w 23rd st"),
        ("W 23rd St", "w 23rd st"),
        ("Twelfth Street", "12th st"),
        ("Eighth Avenue", "8th ave"),
        ("St. Paul Street", "saint paul st"),
        ("Saint Paul St", "saint paul st"),
        ("Pennsylvania Avenue Southeast", "pennsylvania ave se"),
        ("Pennsylvania Ave SE", "pennsylvania ave se"),
        ("O'Donnell Street", "odonnell st"),
    ],
)
def test_street_key(name: str, key: str) -> None:
    assert street_key(name).key == key


def test_key_levels() -> None:
    key = street_key("East Fayette Street")
    assert (key.base, key.core) == ("fayette st", "fayette")


def test_variants() -> None:
    found = variants("East Fayette Street")
    assert {
        "east fayette street",
        "e fayette st",
        "fayette st",
        "fayette",
        "e fayette street",
    } <= found
    assert {"12th st", "twelfth street"} <= variants("Twelfth Street")
    assert {"saint paul st", "st paul street"} <= variants("St. Paul Street")


def test_house_number_and_place_key() -> None:
    assert house_number("12A") == 12
    assert house_number("101-103") == 101
    assert house_number("rear") is None
    assert place_key("St. Casimir's Church") == "saint casimirs church"
