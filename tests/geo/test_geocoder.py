"""The Nominatim fallback, replayed from cassettes written from Nominatim's documented
answers (tests/geo/cassettes/*_from_docs.yaml): nothing reaches the network."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import vcr
from vcr.request import Request

from overheard.geo.city import locator_for
from overheard.geo.gazetteer import Gazetteer
from overheard.geo.geocoder import AnswerCache, NominatimFallback, precision_of
from overheard.geo.locate import CONFIDENCE, Locator
from overheard.model import Precision
from overheard.profile import load_profile
from overheard.settings import GeoSettings, Settings

CASSETTES = Path(__file__).resolve().parent / "cassettes"
USER_AGENT = "overheard-tests"


def _agent(live: Request, recorded: Request) -> None:
    assert live.headers.get("User-Agent") == recorded.headers.get("User-Agent")


# The query must be the recorded one, parameter for parameter: q, the city's viewbox,
# bounded=1, countrycodes, format, limit.
_VCR = vcr.VCR(record_mode="none", match_on=["method", "host", "path", "query", "agent"])
_VCR.register_matcher("agent", _agent)


@contextmanager
def cassette(name: str) -> Iterator[Any]:
    with _VCR.use_cassette(str(CASSETTES / name)) as played:
        yield played
    assert played.all_played, f"{name}: answers left unused"


class Clock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def fallback(
    baltimore: Gazetteer, tmp_path: Path, clock: Clock, budget_s: float = 30.0
) -> NominatimFallback:
    west, south, east, north = baltimore.boundary_bounds()
    return NominatimFallback(
        user_agent=USER_AGENT,
        city="Baltimore",
        viewbox=((south, west), (north, east)),
        contains=baltimore.contains,
        cache=AnswerCache(tmp_path / "geocoder.sqlite"),
        countrycodes=["us"],
        min_delay_s=0.0,  # the tests' clock is not geopy's; the default (1 s) is tested below
        budget_s=budget_s,
        sleep=clock.sleep,
        clock=clock,
    )


def test_an_address_the_gazetteer_lacks(baltimore: Gazetteer, tmp_path: Path, clock: Clock) -> None:
    text = "Huge pothole in front of 3100 Harford Rd"
    without = Locator(baltimore).locate(text)
    assert without.location is None  # the 2015 extract has no Harford Road
    locator = Locator(baltimore, geocoder=fallback(baltimore, tmp_path, clock))
    with cassette("nominatim_house_from_docs.yaml"):
        result = locator.locate(text)
    assert result.location is not None
    assert result.location.precision is Precision.ADDRESS
    assert result.location.source == "geocoder:nominatim"
    assert result.location.confidence == CONFIDENCE["geocoder_address"]
    assert result.location.span is not None and result.location.span.text == "3100 Harford Rd"
    assert result.inside_city is True
    assert any("Nominatim (asked) placed '3100 Harford Rd'" in r for r in result.reasons)


def test_answers_are_cached_durably(baltimore: Gazetteer, tmp_path: Path, clock: Clock) -> None:
    first = fallback(baltimore, tmp_path, clock)
    with cassette("nominatim_house_from_docs.yaml"):
        asked = first.geocode("3100 Harford Rd", first.budget())
    # A new fallback on the same file, under a cassette with no answers (any request
    # would fail): from the cache.
    again = fallback(baltimore, tmp_path, clock)
    with _VCR.use_cassette(str(tmp_path / "no-answers.yaml")):
        cached = again.geocode("3100 Harford Rd", again.budget())
    assert asked.found == cached.found and cached.found is not None
    assert "(cached)" in cached.reason


def test_a_429_is_retried_after_the_wait_it_asks(
    baltimore: Gazetteer, tmp_path: Path, clock: Clock
) -> None:
    geocoder = fallback(baltimore, tmp_path, clock)
    with cassette("nominatim_429_then_street_from_docs.yaml"):
        answer = geocoder.geocode("Harford Rd and Erdman Ave", geocoder.budget())
    assert clock.slept == [3.0]  # Retry-After: 3, longer than the first backoff (1 s)
    assert answer.found is not None and answer.found.precision is Precision.STREET


def test_timeouts_end_within_the_post_s_budget(
    baltimore: Gazetteer, tmp_path: Path, clock: Clock
) -> None:
    geocoder = fallback(baltimore, tmp_path, clock, budget_s=5.0)
    locator = Locator(baltimore, geocoder=geocoder)
    with _VCR.use_cassette(str(CASSETTES / "nominatim_timeout_from_docs.yaml")) as played:
        result = locator.locate("Huge pothole in front of 3100 Harford Rd")
    # Backoff 1 s, then 2 s; a third wait (4 s) would pass the 5 s budget.
    assert clock.slept == [1.0, 2.0] and played.play_count == 3
    assert result.location is None
    assert any(
        "GeocoderTimedOut" in r and "budget does not allow another" in r for r in result.reasons
    )
    # Nothing was cached: the next post asks again.
    assert (
        AnswerCache(tmp_path / "geocoder.sqlite").get("nominatim", "3100 Harford Rd, Baltimore")
        is None
    )


def test_a_result_outside_the_city_is_not_used(
    baltimore: Gazetteer, tmp_path: Path, clock: Clock
) -> None:
    locator = Locator(baltimore, geocoder=fallback(baltimore, tmp_path, clock))
    with cassette("nominatim_outside_from_docs.yaml"):
        result = locator.locate("Dumping again at 7819 Wise Ave")
    assert result.location is None
    assert any("outside the city boundary: not used" in r for r in result.reasons)


@pytest.mark.parametrize(
    ("raw", "precision"),
    [
        ({"class": "place", "type": "house"}, Precision.ADDRESS),
        ({"class": "building", "type": "yes"}, Precision.ADDRESS),
        ({"class": "highway", "type": "residential"}, Precision.STREET),
        ({"class": "highway", "type": "bus_stop"}, Precision.PLACE),
        ({"class": "amenity", "type": "library"}, Precision.PLACE),
        ({"category": "leisure", "type": "park"}, Precision.PLACE),  # format=jsonv2
        ({"class": "place", "type": "neighbourhood"}, Precision.NEIGHBOURHOOD),
        ({"class": "place", "type": "city"}, None),
        ({"class": "boundary", "type": "administrative", "place_rank": 12}, None),
    ],
)
def test_precision_from_the_result_s_type(raw: dict[str, Any], precision: Precision | None) -> None:
    assert precision_of(raw) is precision


def test_off_by_default(tmp_path: Path) -> None:
    assert Settings().geo.geocoder == "none"
    profile = load_profile("baltimore")
    locator = locator_for(profile, tmp_path / "gazetteer")
    assert locator is not None and locator.geocoder is None
    on = GeoSettings(geocoder="nominatim", geocoder_cache=tmp_path / "cache.sqlite")
    locator = locator_for(profile, tmp_path / "gazetteer", on)
    assert locator is not None and locator.geocoder is not None
    assert locator.geocoder.limited.min_delay_seconds == 1.0  # the public service's policy
    assert locator.geocoder.viewbox[0][0] == pytest.approx(39.197207)
    with pytest.raises(ValueError):
        GeoSettings(geocoder_min_delay_s=0.5)
