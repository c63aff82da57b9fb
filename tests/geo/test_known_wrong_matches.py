"""Readings that were wrong on the r/baltimore sample, each on the post's own words."""

from __future__ import annotations

import pytest

from overheard.geo.gazetteer import Gazetteer
from overheard.geo.locate import Locator
from overheard.ingest.archive import iter_archive
from overheard.model import Post, Precision
from overheard.paths import CONFIG_DIR
from overheard.profile import load_profile

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"


@pytest.fixture(scope="module")
def locator(baltimore: Gazetteer) -> Locator:
    return Locator(baltimore, city_names=load_profile("baltimore").city.names)


@pytest.fixture(scope="module")
def sample() -> dict[str, str]:
    return {item.id: item.text for item, _ in iter_archive(SAMPLE) if isinstance(item, Post)}


def streets_read(locator: Locator, text: str) -> set[str]:
    return {c.name for c in locator.locate(text).candidates}


def test_a_numbered_interstate_is_not_a_street(locator: Locator, sample: dict[str, str]) -> None:
    text = sample["reddit:t3_1esalg"]
    assert "on Interstate 695" in text
    assert "Interstate Avenue" not in streets_read(locator, text)
    assert locator.locate("Almost hit two cars on Route 40 today").location is None


def test_fells_is_not_fell_street(locator: Locator, sample: dict[str, str]) -> None:
    text = sample["reddit:t3_xksr8"]
    assert "down Fell's" in text
    assert "Fell Street" not in streets_read(locator, text)
    # Written with its type, Fell Street is still Fell Street.
    result = locator.locate("trash all down Fell St.")
    assert result.location is not None and result.location.precision is Precision.STREET


def test_towson_is_never_towson_street(locator: Locator, sample: dict[str, str]) -> None:
    towson = [text for text in sample.values() if "Towson" in text]
    assert len(towson) >= 10
    for text in towson:
        assert "Towson Street" not in streets_read(locator, text), text
    assert "Towson Street" not in streets_read(locator, "ran out of gas down Towson's main drag")


def test_a_stop_named_after_a_crossing_is_the_crossing(locator: Locator) -> None:
    # A transit stop in the extract is named "S Central Ave & Bank St".
    assert locator.gazetteer.place("S Central Ave & Bank St") is not None
    result = locator.locate("Waited 40 minutes at S Central Ave & Bank St for the bus")
    assert result.location is not None
    assert result.location.precision is Precision.INTERSECTION
    assert result.location.span is not None
    assert result.location.span.text == "S Central Ave & Bank St"
    assert result.mention is not None and result.mention.rule == "crossing"


def test_baltimore_street_is_the_city_s(locator: Locator, sample: dict[str, str]) -> None:
    text = sample["reddit:t3_14l2sy"]
    assert "by Fayette and Baltimore St." in text
    # The extract's only "Baltimore Street" without a directional lies in the county.
    (county,) = locator.gazetteer.street_options("Baltimore St")
    assert not locator.gazetteer.contains(county.point.lat, county.point.lon)
    result = locator.locate(text)
    assert result.inside_city is True and result.local
    assert result.location is not None and result.location.precision is Precision.STREET
    assert any(
        "means the city's streets of that name (East Baltimore Street)" in r for r in result.reasons
    )


@pytest.mark.parametrize(
    "address",
    [
        # Baltimore 311 rows in the city (their Neighborhood is set) that once came out
        # "outside the city": the extract holds only a county street of a like name.
        "932 E PATAPSCO AVE, Baltimore City, 21225",  # only the county's Patapsco Avenue
        "4004 MAPLE SHADE DR, Baltimore City, 21213",  # not Maple Avenue
        "BRENTWOOD AVE & E CHASE ST, Baltimore City, 21202",  # the county's Brentwood Ave
    ],
)
def test_city_311_rows_are_not_made_outside(locator: Locator, address: str) -> None:
    result = locator.locate(address)
    assert result.inside_city is not False and result.local, result.reasons


def test_a_crossing_that_does_not_meet_keeps_the_street_inside_the_city(
    locator: Locator,
) -> None:
    result = locator.locate("BRENTWOOD AVE & E CHASE ST")
    assert result.location is not None and result.location.precision is Precision.STREET
    assert result.location.span is not None and result.location.span.text == "E CHASE ST"
    assert any("one inside the city first" in r for r in result.reasons)


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        # Baltimore 311 rows on streets the extract lacks, once placed at a namesake.
        ("2100 EAGLE ST, Baltimore City, 21223", "EAGLE"),  # a bar 6.8 km away
        ("1200 RIVERSIDE AVE, Baltimore City, 21230", "RIVERSIDE"),  # the neighbourhood
        ("3601 HAWKINS POINT RD, Baltimore City, 21226", "POINT RD"),  # North Point Road
    ],
)
def test_a_street_the_gazetteer_lacks_is_not_its_namesake(
    locator: Locator, text: str, wrong: str
) -> None:
    result = locator.locate(text)
    assert (
        result.location is None
        or result.location.span is None
        or (result.location.span.text != wrong)
    ), result.reasons


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("pothole on North Point Rd", "North Point Rd"),
        ("Fells Point Pratt St is flooded again", "Pratt St"),  # a known name before it
        ("trash piled up outside the Eagle again", "Eagle"),  # the place, no street type
        ("streetlight out on Patterson Park Ave", "Patterson Park Ave"),
    ],
)
def test_the_namesake_rules_keep_what_they_should(locator: Locator, text: str, span: str) -> None:
    result = locator.locate(text)
    assert result.location is not None and result.location.span is not None, result.reasons
    assert result.location.span.text == span
