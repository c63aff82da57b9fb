"""From text to one location, with reasons, on the real Baltimore extract, the r/baltimore
sample and the Baltimore 311 requests of October 2019."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest

from overheard.geo.gazetteer import Gazetteer, distance_m
from overheard.geo.locate import CONFIDENCE, MAX_MENTIONS, Locator
from overheard.geo.places import MAX_CANDIDATES
from overheard.ingest.archive import iter_archive
from overheard.model import Post, Precision
from overheard.paths import CONFIG_DIR
from overheard.profile import load_profile
from tests.benchmarks.geo_gazetteer import read_311
from tests.geo.shared_data import BALTIMORE_311, need

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"


@pytest.fixture(scope="module")
def locator(baltimore: Gazetteer) -> Locator:
    return Locator(baltimore, city_names=load_profile("baltimore").city.names)


@pytest.mark.parametrize(
    ("text", "precision", "said"),
    [
        ("Pothole on Eastern Ave near Linwood", Precision.INTERSECTION, "Eastern Ave near Linwood"),
        ("trash at the corner of Fleet and Ponca", Precision.INTERSECTION, "Fleet and Ponca"),
        ("the 2300 block of E Fayette St is dark", Precision.STREET, "2300 block of E Fayette St"),
        ("needles outside Patterson Park", Precision.PLACE, "Patterson Park"),
        ("break-ins in Canton", Precision.NEIGHBOURHOOD, "Canton"),
        ("Baltimore needs to fix its roads", Precision.CITY, "Baltimore"),
    ],
)
def test_each_form(locator: Locator, text: str, precision: Precision, said: str) -> None:
    result = locator.locate(text)
    assert result.location is not None
    assert result.location.precision == precision
    assert result.location.span is not None and result.location.span.text == said
    assert result.location.source == "gazetteer"
    assert result.inside_city is True and result.local
    assert result.reasons


def test_intersection_point(locator: Locator, baltimore: Gazetteer) -> None:
    result = locator.locate("Fleet & Ponca")
    expected = baltimore.intersection("Fleet St", "S Ponca St")
    assert result.location is not None and expected is not None
    assert distance_m(result.location.lat, result.location.lon, expected.lat, expected.lon) < 1
    assert result.location.confidence == CONFIDENCE["intersection"]


def test_block_is_placed_mid_block(locator: Locator, baltimore: Gazetteer) -> None:
    result = locator.locate("the 2300 block of E Fayette St")
    expected = baltimore.address(2350, "E Fayette St")
    assert result.location is not None and expected is not None
    assert (result.location.lat, result.location.lon) == (expected.lat, expected.lon)
    assert any("middle of the block" in r for r in result.reasons)


def test_address_point(locator: Locator, baltimore: Gazetteer) -> None:
    result = locator.locate("Water main break in front of 503 45th Street")
    assert result.location is not None
    assert result.location.precision == Precision.ADDRESS
    assert result.location.confidence == CONFIDENCE["address"]
    assert any("an OSM address point" in r for r in result.reasons)


def test_unknown_number_falls_back_to_the_street(locator: Locator) -> None:
    # North Clinton Street ends long before the 9900 block.
    result = locator.locate("at 9901 N Clinton St")
    assert result.location is not None and result.location.precision == Precision.STREET
    assert any("cannot place 9901" in r for r in result.reasons)


def test_precision_order(locator: Locator) -> None:
    result = locator.locate("In Canton, near Patterson Park, the corner of Fleet and Ponca")
    assert result.location is not None
    assert result.location.precision == Precision.INTERSECTION
    assert any("over 2 other mentions: the most precise" in r for r in result.reasons)


def test_two_streets_of_one_name(locator: Locator, baltimore: Gazetteer) -> None:
    names = {o.name for o in baltimore.street_options("Ann St")}
    assert names == {"North Ann Street", "South Ann Street"}
    north = locator.locate("Streetlight out on Ann St near Johnston Square")
    assert north.location is not None
    assert any(
        "chose North Ann Street, the one nearest Johnston Square" in r for r in north.reasons
    )
    alone = locator.locate("Streetlight out on Ann St")
    assert alone.location is not None
    assert any("chose South Ann Street, the longest" in r for r in alone.reasons)
    assert alone.location.confidence == pytest.approx(CONFIDENCE["street"] - 0.1)


def test_place_outside_the_city(locator: Locator, baltimore: Gazetteer) -> None:
    # Squire's (a restaurant in Dundalk, Baltimore County) is in the extract.
    place = baltimore.place("Squire's")
    assert place is not None and not baltimore.contains(place.lat, place.lon)
    result = locator.locate("The parking lot behind Squire's is one big pothole")
    assert result.location is not None and result.location.precision == Precision.PLACE
    assert result.inside_city is False and not result.local
    assert "lies outside the city boundary: the post is not local" in result.reasons[-1]


@pytest.mark.parametrize(
    "address",
    # 311 rows outside the city (empty Neighborhood) on streets the extract lacks: the
    # locality they name (an administrative area the extract clips) places them.
    ["7819 WISE AVE, DUNDALK, 21222", "8908 TARPLEYS CIR, ROSEDALE, 21237"],
)
def test_county_address_the_extract_lacks(locator: Locator, address: str) -> None:
    result = locator.locate(address)
    assert result.location is not None
    assert result.location.precision is Precision.NEIGHBOURHOOD
    assert result.inside_city is False and not result.local, result.reasons


def test_a_locality_s_name_in_a_street_name_is_the_street(locator: Locator) -> None:
    result = locator.locate("trash all over Eastern Ave near Dundalk Ave")
    assert result.inside_city is True and result.local


def test_the_localities_are_the_ones_outside(baltimore: Gazetteer) -> None:
    # Dundalk and Rosedale (admin_level 8) lie outside; Baltimore and Baltimore County
    # share the city line, where a clipped area's point cannot be told in or out.
    names = set(baltimore.neighbourhood_names())
    assert {"Dundalk", "Rosedale"} <= names
    assert not {"Baltimore", "Baltimore County"} & names
    assert baltimore.meta["count_localities_outside"] == "2"


def test_nothing_found(locator: Locator) -> None:
    result = locator.locate("What a nice day")
    assert result.location is None and result.reasons == [] and result.mentions_found == 0


def test_bounded_work(locator: Locator) -> None:
    text = "Fleet St and Ponca St, Eastern Ave, Canton, Patterson Park. " * 2000
    result = locator.locate(text)
    assert result.names_scanned == MAX_CANDIDATES
    assert result.mentions_found > MAX_MENTIONS
    assert result.mentions_considered == MAX_MENTIONS
    assert len(result.candidates) <= MAX_MENTIONS
    assert any(f"only the first {MAX_CANDIDATES} were looked at" in r for r in result.reasons)
    assert any(f"only the first {MAX_MENTIONS} were resolved" in r for r in result.reasons)
    assert result.location is not None
    assert result.location.precision == Precision.INTERSECTION


def test_reddit_sample(locator: Locator) -> None:
    posts = [item.text for item, _ in iter_archive(SAMPLE) if isinstance(item, Post)]
    results = [locator.locate(text) for text in posts]
    located = [r for r in results if r.location is not None]
    by_precision = Counter(r.location.precision.value for r in located if r.location)
    finer = sum(n for p, n in by_precision.items() if p != Precision.CITY)
    print(f"r/baltimore: {len(posts)} posts, {len(located)} located: {dict(by_precision)}")
    assert finer >= 50
    # Outside the city: only posts about Baltimore County localities ("Train just went
    # boom in Rosedale!", "Spotted Ecto 2 in Dundalk"), six when written.
    outside = [r.location for r in results if r.inside_city is False and r.location]
    assert {o.span.text for o in outside if o.span} <= {"Dundalk", "Rosedale"}
    assert len(outside) <= 8
    for result in located:
        assert result.location is not None and result.location.span is not None
        span = result.location.span
        assert span.end > span.start


def test_311_addresses_as_text(locator: Locator) -> None:
    need(BALTIMORE_311)
    errors: dict[str, list[float]] = {"address": [], "intersection": []}
    rows = read_311()
    for row in rows:
        result = locator.locate(row["Address"])
        if result.location is None:
            continue
        precision = result.location.precision.value
        if precision in errors:
            errors[precision].append(
                distance_m(
                    result.location.lat,
                    result.location.lon,
                    float(row["Latitude"]),
                    float(row["Longitude"]),
                )
            )
    medians = {k: statistics.median(v) for k, v in errors.items()}
    print(
        f"311: {len(rows)} rows; located at address {len(errors['address'])} "
        f"(median {medians['address']:.0f} m), at intersection {len(errors['intersection'])} "
        f"(median {medians['intersection']:.0f} m)"
    )
    assert len(errors["address"]) >= 150 and medians["address"] < 100
    assert len(errors["intersection"]) >= 20 and medians["intersection"] < 30


def test_streets_that_do_not_meet(locator: Locator) -> None:
    # East Fayette and East Baltimore Street run side by side: no crossing.
    result = locator.locate("We parked by Fayette and E Baltimore St. and walked")
    assert result.location is not None and result.location.precision == Precision.STREET
    assert result.location.span is not None and result.location.span.text == "E Baltimore St."
    assert any("do not meet in the gazetteer" in r for r in result.reasons)
