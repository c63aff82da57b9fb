"""Finding location expressions in text, on names the real Baltimore extract holds."""

from __future__ import annotations

import pytest

from overheard.geo.gazetteer import Gazetteer
from overheard.geo.places import MAX_CANDIDATES, Mention, PlaceFinder


@pytest.fixture(scope="module")
def finder(baltimore: Gazetteer) -> PlaceFinder:
    return PlaceFinder(baltimore, city_names=["baltimore", "bmore", "charm city"])


def only(finder: PlaceFinder, text: str) -> Mention:
    mentions = finder.find(text)
    assert len(mentions) == 1, mentions
    return mentions[0]


def test_the_names_are_real(baltimore: Gazetteer) -> None:
    assert baltimore.intersection("Eastern Ave", "Linwood") is not None
    assert baltimore.intersection("Fleet", "Ponca") is not None
    assert baltimore.street("E Fayette St") is not None
    assert baltimore.place("Patterson Park") is not None
    assert baltimore.neighbourhood("Canton") is not None
    assert baltimore.place("S Central Ave & Bank St") is not None


@pytest.mark.parametrize(
    ("text", "said", "streets"),
    [
        ("Pothole on Eastern Ave near Linwood, been weeks", "Eastern Ave near Linwood", 2),
        ("trash at the corner of Fleet and Ponca.", "Fleet and Ponca", 2),
        ("Fleet & Ponca light is out", "Fleet & Ponca", 2),
        ("FLEET/PONCA again", "FLEET/PONCA", 2),
    ],
)
def test_intersections(finder: PlaceFinder, text: str, said: str, streets: int) -> None:
    mention = only(finder, text)
    assert (mention.kind, mention.text, len(mention.parts)) == ("intersection", said, streets)
    assert text[mention.start : mention.end] == said
    assert mention.rule == "crossing"


def test_block(finder: PlaceFinder) -> None:
    mention = only(finder, "the 2300 block of E. Fayette St is dark at night")
    assert (mention.kind, mention.number, mention.text) == (
        "block",
        2300,
        "2300 block of E. Fayette St",
    )
    assert mention.parts[0].spelling == "e fayette st"


def test_address(finder: PlaceFinder) -> None:
    mention = only(finder, "Water everywhere at 101 N. Clinton St. since Monday")
    assert (mention.kind, mention.number, mention.text) == ("address", 101, "101 N. Clinton St.")


def test_street(finder: PlaceFinder) -> None:
    mention = only(finder, "Potholes all along Eastern Avenue")
    assert (mention.kind, mention.rule) == ("street", "typed")
    bare = only(finder, "cars speeding down Broadway every night")
    assert (bare.kind, bare.rule) == ("street", "on")


def test_place_and_neighbourhood(finder: PlaceFinder) -> None:
    park = only(finder, "needles outside Patterson Park again")
    # "Patterson Park" is also Patterson Park Avenue written without its type.
    assert (park.kind, park.rule) == ("place", "bare_place")
    canton = only(finder, "break-ins in Canton this week")
    assert (canton.kind, canton.rule) == ("neighbourhood", "bare_place")
    assert "place or neighbourhood" in canton.explanation
    hood = only(finder, "Fells Point flooded")
    assert (hood.kind, hood.rule) == ("neighbourhood", "neighbourhood")


def test_transit_stop(finder: PlaceFinder) -> None:
    # A stop named after a crossing is read as the crossing, which the gazetteer places.
    stop = only(finder, "nobody cleans the bus stop at S Central Ave & Bank St")
    assert (stop.kind, stop.text) == ("intersection", "S Central Ave & Bank St")
    other = only(finder, "nobody cleans the bus stop at Patterson Park")
    assert (other.kind, other.text) == ("place", "Patterson Park")


def test_common_words_are_not_places(finder: PlaceFinder) -> None:
    # "Target", "Subway" are places in the extract, "broadway" and "fleet" streets:
    # written in lower case, or bare with nothing saying street, they are words.
    assert finder.find("went to target and subway, then the broadway show") == []
    assert finder.find("a fleet of trucks") == []
    assert finder.find("Fleet of trucks") == []


def test_other_street_type_is_not_a_match(finder: PlaceFinder) -> None:
    # The extract has Wise Court only: "WISE AVE" (Dundalk) is another street. Dundalk
    # itself is a locality outside the city (and a bare Dundalk Avenue).
    found = finder.find("7819 WISE AVE, DUNDALK, 21222")
    assert [(m.kind, m.text, m.rule) for m in found] == [("neighbourhood", "DUNDALK", "bare_place")]


def test_city_name(finder: PlaceFinder) -> None:
    city = only(finder, "Baltimore needs to fix its roads")
    assert (city.kind, city.rule) == ("city", "city")
    typed = only(finder, "Baltimore Street is closed")
    assert typed.kind == "street"
    # Inside a longer name, the name wins.
    assert [m.kind for m in finder.find("Charm City is Baltimore, on Baltimore Street")] == [
        "city",
        "city",
        "street",
    ]


def test_thousands_of_names_are_cut_off(finder: PlaceFinder) -> None:
    text = "Fleet St and Ponca St, Eastern Ave, Canton, Patterson Park. " * 2000
    found = finder.search(text)
    assert found.truncated and found.candidates == MAX_CANDIDATES
    assert 0 < len(found.mentions) <= MAX_CANDIDATES
    assert found.mentions[-1].end < 10_000  # nothing past the cut was read


def test_offsets_hold_when_lowercasing_changes_length(finder: PlaceFinder) -> None:
    text = "İstanbul fans parked on Fleet St all night"
    mention = only(finder, text)
    assert text[mention.start : mention.end] == "Fleet St" == mention.text
