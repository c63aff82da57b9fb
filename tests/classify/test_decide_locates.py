"""The decision with the city's gazetteer: issues carry a location; places outside the
city are not the city's. Built from the extract the project ships in config/geo/."""

import sqlite3
from pathlib import Path

import pytest

from overheard.classify.decide import Classifier, Outcome
from overheard.geo.build import BUILD_VERSION
from overheard.geo.city import gazetteer_path, locator_for
from overheard.geo.gazetteer import Gazetteer
from overheard.model import Precision
from overheard.profile import load_profile
from tests.factories import post


@pytest.fixture(scope="module")
def gazetteers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gazetteer")


@pytest.fixture(scope="module")
def classifier(gazetteers: Path) -> Classifier:
    profile = load_profile("baltimore")
    return Classifier(profile, locator_for(profile, gazetteers))


def decide(classifier: Classifier, text: str):
    (decision,) = classifier.classify([post(text)])
    return decision


def test_a_complaint_at_an_intersection_is_located_there(classifier: Classifier) -> None:
    decision = decide(classifier, "Streetlight out again at the corner of Fleet and Ponca")
    assert decision.outcome is Outcome.ISSUE
    location = decision.issue.location
    assert location is not None
    assert location.precision is Precision.INTERSECTION
    assert (round(location.lat, 2), round(location.lon, 2)) == (39.29, -76.55)
    assert location.span is not None and "Fleet and Ponca" in location.span.text
    assert any(reason.startswith("locate: ") for reason in decision.issue.explanation)


def test_a_complaint_about_a_place_outside_the_city_is_not_an_issue(
    classifier: Classifier,
) -> None:
    # Squire's, a restaurant in Dundalk (Baltimore County), is in the extract.
    decision = decide(classifier, "The parking lot behind Squire's is one big pothole")
    assert decision.outcome is Outcome.OUTSIDE_CITY
    assert decision.issue is None
    assert any("outside" in reason for reason in decision.reasons)


def test_without_a_place_an_issue_stays_unlocated(classifier: Classifier) -> None:
    decision = decide(classifier, "Potholes everywhere, nobody fixes anything")
    assert decision.outcome is Outcome.ISSUE
    assert decision.issue.location is None


def test_the_gazetteer_is_built_once_and_then_reused(
    gazetteers: Path,
) -> None:
    profile = load_profile("baltimore")
    first = gazetteer_path(profile, gazetteers)
    assert first is not None and first.exists()
    built = first.stat().st_mtime_ns
    assert gazetteer_path(profile, gazetteers) == first
    assert first.stat().st_mtime_ns == built


def test_a_gazetteer_built_by_an_older_build_is_built_again(tmp_path: Path) -> None:
    profile = load_profile("baltimore")
    path = gazetteer_path(profile, tmp_path)
    assert path is not None
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'build_version'")
    db.close()
    assert gazetteer_path(profile, tmp_path) == path
    with Gazetteer.open(path) as gazetteer:
        assert gazetteer.meta["build_version"] == str(BUILD_VERSION)
