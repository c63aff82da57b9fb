"""Street names written in lower case: read where their form says street (a type, or a
crossing of two streets that meet), and common words left alone."""

from __future__ import annotations

import pytest

from overheard.geo.gazetteer import Gazetteer, distance_m
from overheard.geo.locate import Locator
from overheard.model import Precision
from overheard.profile import load_profile


@pytest.fixture(scope="module")
def locator(baltimore: Gazetteer) -> Locator:
    return Locator(baltimore, city_names=load_profile("baltimore").city.names)


def test_a_typed_street_in_lower_case(locator: Locator) -> None:
    result = locator.locate("pothole on eastern ave")
    assert result.location is not None and result.location.precision is Precision.STREET
    assert result.location.span is not None and result.location.span.text == "eastern ave"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("trash at fleet and ponca", "fleet and ponca"),
        ("fleet & ponca again", "fleet & ponca"),
        ("fleet/ponca", "fleet/ponca"),
        ("Fleet & ponca", "Fleet & ponca"),
        ("eastern ave and linwood", "eastern ave and linwood"),
    ],
)
def test_a_crossing_in_lower_case(
    locator: Locator, baltimore: Gazetteer, text: str, said: str
) -> None:
    result = locator.locate(text)
    assert result.location is not None
    assert result.location.precision is Precision.INTERSECTION
    assert result.location.span is not None and result.location.span.text == said
    assert any("lower case" in r for r in result.reasons)
    if "ponca" in text:
        expected = baltimore.intersection("Fleet St", "S Ponca St")
        assert expected is not None
        assert distance_m(result.location.lat, result.location.lon, expected.lat, expected.lon) < 1


@pytest.mark.parametrize(
    "text",
    [
        # Every word here is a bare street name in the extract (Bank, Water, Key, Bond,
        # High, Cross, Point, Market, Fleet, Eastern, Linwood); none is meant as one.
        "the food bank and water company",
        "key and bond investors",
        "high and dry after the storm",
        "cross and point",
        "market & bank holidays",
        "the market and water bills went up",  # Market Pl and Water St do meet
        "a fleet and a bus",
        "i'm on eastern today",
        "Eastern Ave near linwood",  # the typed street only: "near" joins no lower-case name
        "north and south",
    ],
)
def test_common_words_stay_words(locator: Locator, text: str) -> None:
    result = locator.locate(text)
    assert result.location is None or result.location.precision is Precision.STREET, text
    assert all(c.mention.rule != "lower_crossing" for c in result.candidates), text
