"""Platform geodata and the author's profile location as evidence, on the real Baltimore
gazetteer: a place the text names wins, a geotag places what the text does not."""

from __future__ import annotations

import math

import pytest

from overheard.classify.decide import Classifier, Outcome
from overheard.geo.gazetteer import Gazetteer, distance_m
from overheard.geo.locate import CONFIDENCE, Locator
from overheard.geo.platform import geotag, names_city
from overheard.model import Author, GeoPoint, Platform, PlatformGeo, PlatformPlace, Post, Precision
from overheard.profile import load_profile
from tests.factories import post

CITY_NAMES = load_profile("baltimore").city.names
#: The bounding box X gives its "Baltimore, MD" place (the whole city).
BALTIMORE_BBOX = (-76.711521, 39.197211, -76.529316, 39.372215)
TOWSON = GeoPoint(lat=39.4015, lon=-76.6019)  # Baltimore County, north of the city


@pytest.fixture(scope="module")
def locator(baltimore: Gazetteer) -> Locator:
    return Locator(baltimore, city_names=CITY_NAMES)


def x_post(text: str, geo: PlatformGeo | None = None, profile_location: str | None = None) -> Post:
    made = post(text, "1849", platform=Platform.X)
    return made.model_copy(
        update={"geo": geo, "author": Author(handle="someone", profile_location=profile_location)}
    )


def near(gazetteer: Gazetteer, street: str) -> GeoPoint:
    match = gazetteer.street(street)
    assert match is not None
    return GeoPoint(lat=match.point.lat, lon=match.point.lon)


def test_a_point_places_a_post_whose_text_names_nothing(
    locator: Locator, baltimore: Gazetteer
) -> None:
    point = near(baltimore, "Fleet St")
    result = locator.locate_post(x_post("this pothole is eating cars", PlatformGeo(point=point)))
    assert result.location is not None
    assert result.location.precision is Precision.PLATFORM_GEOTAG
    assert (result.location.lat, result.location.lon) == (point.lat, point.lon)
    assert result.location.source == "platform" and result.location.span is None
    assert result.location.confidence == CONFIDENCE["platform_point"]
    assert result.inside_city is True
    assert any("place the post (platform geotag)" in r for r in result.reasons)


def test_the_city_name_alone_gives_way_to_the_point(locator: Locator, baltimore: Gazetteer) -> None:
    point = near(baltimore, "Fleet St")
    result = locator.locate_post(x_post("Baltimore, fix this road", PlatformGeo(point=point)))
    assert result.location is not None
    assert result.location.precision is Precision.PLATFORM_GEOTAG


def test_a_place_the_text_names_beats_the_point(locator: Locator, baltimore: Gazetteer) -> None:
    far = near(baltimore, "Eastern Ave")
    result = locator.locate_post(
        x_post("Streetlight out at the corner of Fleet and Ponca", PlatformGeo(point=far))
    )
    assert result.location is not None
    assert result.location.precision is Precision.INTERSECTION
    assert result.location.source == "gazetteer"
    assert any("a place the text names beats the platform's geodata" in r for r in result.reasons)


def test_the_point_chooses_among_streets_of_one_name(
    locator: Locator, baltimore: Gazetteer
) -> None:
    text = "Streetlight out on Ann St"
    assert any("chose South Ann Street, the longest" in r for r in locator.locate(text).reasons)
    north = near(baltimore, "N Ann St")
    result = locator.locate_post(x_post(text, PlatformGeo(point=north)))
    assert result.location is not None and result.location.precision is Precision.STREET
    assert any(
        "chose North Ann Street, the one nearest the post's coordinates" in r
        for r in result.reasons
    )


def test_a_city_sized_place_is_never_a_point(locator: Locator) -> None:
    city = PlatformPlace(full_name="Baltimore, MD", bbox=BALTIMORE_BBOX)
    result = locator.locate_post(x_post("potholes everywhere", PlatformGeo(place=city)))
    assert result.location is None
    assert any("'Baltimore, MD' is 2" in r and "never where in it" in r for r in result.reasons)


def test_a_small_place_is_weaker_than_a_point(locator: Locator, baltimore: Gazetteer) -> None:
    centre = near(baltimore, "Fleet St")
    box = (centre.lon - 0.002, centre.lat - 0.002, centre.lon + 0.002, centre.lat + 0.002)
    place = PlatformPlace(name="Canton", full_name="Canton, Baltimore", bbox=box)
    result = locator.locate_post(x_post("broken streetlight", PlatformGeo(place=place)))
    assert result.location is not None
    assert result.location.precision is Precision.PLATFORM_GEOTAG
    assert distance_m(result.location.lat, result.location.lon, centre.lat, centre.lon) < 1
    assert result.location.confidence == CONFIDENCE["platform_place"]
    assert CONFIDENCE["platform_place"] < CONFIDENCE["platform_point"]


def test_a_point_outside_the_city_is_not_used(locator: Locator) -> None:
    result = locator.locate_post(x_post("this pothole again", PlatformGeo(point=TOWSON)))
    assert result.location is None and result.local
    assert any("outside the city boundary: not used" in r for r in result.reasons)


def test_reddit_has_no_geodata(locator: Locator) -> None:
    text = "trash at the corner of Fleet and Ponca"
    by_post, by_text = locator.locate_post(post(text)), locator.locate(text)
    assert by_post.location == by_text.location and by_post.reasons == by_text.reasons


def test_the_profile_location_is_only_a_hint(locator: Locator) -> None:
    result = locator.locate_post(x_post("this pothole again", profile_location="Baltimore, MD"))
    assert result.location is None and result.profile_names_city is True
    assert any("never the problem's place" in r for r in result.reasons)
    # A profile naming a neighbourhood does not place the post either.
    hood = locator.locate_post(x_post("this pothole again", profile_location="Fells Point"))
    assert hood.location is None and hood.profile_names_city is False


def test_unusable_geodata() -> None:
    box = (math.nan, 39.2, -76.5, 39.3)
    tag, why = geotag(PlatformGeo(place=PlatformPlace(name="x", bbox=box)))
    assert tag is None and why is not None and "unusable bounding box" in why
    upside_down = (-76.5, 39.3, -76.6, 39.2)
    tag, why = geotag(PlatformGeo(place=PlatformPlace(name="x", bbox=upside_down)))
    assert tag is None and why is not None
    assert geotag(None) == (None, None)
    assert geotag(PlatformGeo(place=PlatformPlace(name="no box"))) == (None, None)


@pytest.mark.parametrize(
    ("profile", "named"),
    [
        ("Baltimore, MD", True),
        ("bmore 🦀", True),
        ("Charm City", True),
        ("Towson, MD", False),
        ("", False),
        (None, False),
    ],
)
def test_names_city(profile: str | None, named: bool) -> None:
    assert names_city(profile, CITY_NAMES) is named


def test_the_decision_uses_the_geotag(baltimore: Gazetteer, locator: Locator) -> None:
    classifier = Classifier(load_profile("baltimore"), locator)
    point = near(baltimore, "Fleet St")
    geo = PlatformGeo(point=point)
    (decision,) = classifier.classify([x_post("Huge pothole here, fix this road please", geo)])
    assert decision.outcome is Outcome.ISSUE and decision.issue is not None
    location = decision.issue.location
    assert location is not None and location.precision is Precision.PLATFORM_GEOTAG
