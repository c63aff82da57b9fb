"""X API v2 responses, from tweepy's recorded cassettes, normalised into Posts."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from overheard.deadletter import DeadLetter
from overheard.ingest import Position
from overheard.ingest.x_v2 import post_from_tweet, posts_from_response
from overheard.model import GeoPoint, Post, Provenance

Read = Callable[..., list[tuple[Post | DeadLetter, Position]]]
Jsonl = Callable[[list[Any]], bytes]

PROVENANCE = Provenance(
    connector="archive",
    connector_version="test",
    collected_at=datetime(2026, 1, 2, tzinfo=UTC),
    source="t.jsonl:1",
)


def expanded(response: dict[str, Any]) -> dict[str, Any]:
    """A real tweet with every field and expansion a complaint search asks for.

    The shared cassettes were recorded with the default fields (id, text) only, so the
    fields and `includes` here follow the shapes and example values of X's v2 data
    dictionary (developer.x.com: tweet, user and place objects).
    """
    tweet = copy.deepcopy(response["data"])
    tweet.update(
        author_id="2244994945",
        created_at="2020-08-12T17:01:42.000Z",
        conversation_id="1293593516040269825",
        lang="en",
        entities={
            "hashtags": [{"start": 36, "end": 47, "tag": "TwitterAPI"}],
            "mentions": [{"start": 0, "end": 8, "username": "XDevelopers", "id": "2244994945"}],
            "urls": [
                {
                    "start": 195,
                    "end": 218,
                    "url": "https://t.co/32VrwpGaJw",
                    "expanded_url": "https://blog.twitter.com/developer/en_us/topics/tools/2020/introducing_new_twitter_api",
                    "display_url": "blog.twitter.com/developer/en_u…",
                }
            ],
        },
        referenced_tweets=[{"type": "replied_to", "id": "1293593145746444288"}],
        geo={
            "place_id": "f7eb2fa2fea288b1",
            "coordinates": {"type": "Point", "coordinates": [-105.18816086351444, 39.68]},
        },
    )
    return {
        "data": [tweet],
        "includes": {
            "users": [
                {
                    "id": "2244994945",
                    "name": "Developers",
                    "username": "XDevelopers",
                    "location": "127.0.0.1",
                }
            ],
            "places": [
                {
                    "id": "f7eb2fa2fea288b1",
                    "full_name": "Lakewood, CO",
                    "name": "Lakewood",
                    "country_code": "US",
                    "place_type": "city",
                    "geo": {
                        "type": "Feature",
                        "bbox": [-105.193475, 39.60973, -105.053164, 39.761974],
                        "properties": {},
                    },
                }
            ],
        },
    }


def test_every_recorded_response_gives_one_post_per_tweet(
    x_v2_responses: dict[str, dict[str, Any]],
) -> None:
    assert len(x_v2_responses) == 7
    for name, response in x_v2_responses.items():
        tweets = response["data"] if isinstance(response["data"], list) else [response["data"]]
        posts = list(posts_from_response(response, PROVENANCE))
        assert all(isinstance(p, Post) for p in posts), name
        assert [p.id for p in posts] == [f"x:{t['id']}" for t in tweets], name
        assert [p.text for p in posts] == [t["text"] for t in tweets], name


def test_a_tweet_without_created_at_gets_the_time_its_id_holds(
    x_v2_responses: dict[str, dict[str, Any]],
) -> None:
    # tweepy's test bot tweets the time it posts (UTC), e.g. "2022-10-07 22:42:12.637170 tweepy".
    response = x_v2_responses["test_client_search_recent_tweets"]
    posts = list(posts_from_response(response, PROVENANCE))
    assert posts
    for post in posts:
        assert isinstance(post, Post)
        said = datetime.fromisoformat(post.text.removesuffix(" tweepy")).replace(tzinfo=UTC)
        assert abs(post.created_at - said) < timedelta(seconds=2)


def test_default_fields_give_a_handle_free_url_and_no_author(
    x_v2_responses: dict[str, dict[str, Any]],
) -> None:
    (post,) = posts_from_response(x_v2_responses["test_client_get_tweet"], PROVENANCE)
    assert isinstance(post, Post)
    assert post.url == "https://x.com/i/web/status/1293593516040269825"
    assert post.author.handle is None and post.geo is None
    assert post.provenance == PROVENANCE


def test_includes_supply_author_place_and_the_point_is_read_lon_lat(
    x_v2_responses: dict[str, dict[str, Any]],
) -> None:
    (post,) = posts_from_response(expanded(x_v2_responses["test_client_get_tweet"]), PROVENANCE)
    assert isinstance(post, Post)
    assert post.url == "https://x.com/XDevelopers/status/1293593516040269825"
    assert post.created_at == datetime(2020, 8, 12, 17, 1, 42, tzinfo=UTC)
    assert (post.author.id, post.author.handle) == ("2244994945", "XDevelopers")
    assert post.author.profile_location == "127.0.0.1"
    assert post.language == "en"
    assert post.mentions == ("XDevelopers",)
    assert post.hashtags == ("TwitterAPI",)
    assert post.links[0].startswith("https://blog.twitter.com/developer/")
    assert post.thread.reply_to == "x:1293593145746444288"
    assert post.thread.conversation == "x:1293593516040269825"
    assert post.geo is not None and post.geo.place is not None
    assert post.geo.point == GeoPoint(lat=39.68, lon=-105.18816086351444)
    assert post.geo.place.full_name == "Lakewood, CO"
    assert post.geo.place.bbox == (-105.193475, 39.60973, -105.053164, 39.761974)


def test_an_unexpanded_place_keeps_its_id(x_v2_responses: dict[str, dict[str, Any]]) -> None:
    response = expanded(x_v2_responses["test_client_get_tweet"])
    del response["includes"]
    (post,) = posts_from_response(response, PROVENANCE)
    assert isinstance(post, Post) and post.geo is not None and post.geo.place is not None
    assert post.geo.place.id == "f7eb2fa2fea288b1" and post.geo.place.bbox is None
    assert post.author.handle is None and post.author.id == "2244994945"


def test_note_tweet_holds_the_whole_text_of_a_long_post(
    x_v2_responses: dict[str, dict[str, Any]],
) -> None:
    tweet = copy.deepcopy(x_v2_responses["test_client_get_tweet"]["data"])
    whole = tweet["text"] + " " + "And the rest of a long post. " * 12
    tweet["note_tweet"] = {"text": whole, "entities": {"hashtags": [{"tag": "Long"}]}}
    post = post_from_tweet(tweet, PROVENANCE)
    assert post.text == whole and post.hashtags == ("Long",)


def test_undetermined_language_is_none(x_v2_responses: dict[str, dict[str, Any]]) -> None:
    tweet = dict(x_v2_responses["test_client_get_tweet"]["data"], lang="und")
    assert post_from_tweet(tweet, PROVENANCE).language is None


def test_flattened_tweets_one_per_line_carry_their_author(
    tmp_path: Path, x_v2_responses: dict[str, dict[str, Any]], read: Read, jsonl: Jsonl
) -> None:
    # twarc2 `flatten`: each tweet on its own line, author and place merged in.
    response = expanded(x_v2_responses["test_client_get_tweet"])
    tweet = dict(response["data"][0], author=response["includes"]["users"][0])
    tweet["geo"] = dict(tweet["geo"], **response["includes"]["places"][0])
    path = tmp_path / "flat.jsonl"
    path.write_bytes(jsonl([tweet]))
    ((post, _),) = read(path)
    assert isinstance(post, Post)
    assert post.author.handle == "XDevelopers"
    assert post.geo is not None and post.geo.place is not None
    assert post.geo.place.bbox == (-105.193475, 39.60973, -105.053164, 39.761974)


def test_a_saved_response_document_resumes_at_its_start_or_end(
    tmp_path: Path, x_v2_responses: dict[str, dict[str, Any]], read: Read
) -> None:
    response = x_v2_responses["test_client_get_users_mentions"]
    path = tmp_path / "mentions.json"
    path.write_text(json.dumps(response, indent=2), "utf-8")
    items = read(path)
    assert len(items) == len(response["data"]) == 10
    positions = [position for _, position in items]
    assert [(p.offset, p.item) for p in positions[:-1]] == [(0, k) for k in range(1, 10)]
    assert positions[-1].offset == path.stat().st_size
    resumed = read(path, start=positions[3])
    assert resumed == items[4:]
    assert read(path, start=positions[-1]) == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"text": ""}, "MissingText"),
        ({"id": "not-a-number"}, "MalformedMessage"),
        ({"created_at": "last Tuesday"}, "BadTimestamp"),
        ({"id": "20", "created_at": None}, "BadTimestamp"),
    ],
)
def test_an_unusable_tweet_is_dead_lettered_and_its_neighbours_kept(
    tmp_path: Path,
    x_v2_responses: dict[str, dict[str, Any]],
    read: Read,
    jsonl: Jsonl,
    change: dict[str, Any],
    error: str,
) -> None:
    response = copy.deepcopy(x_v2_responses["test_client_get_tweets"])
    response["data"][0].update(change)
    if change.get("created_at", "") is None:
        del response["data"][0]["created_at"]
    path = tmp_path / "lookup.jsonl"
    path.write_bytes(jsonl([response]))
    (dead, _), (post, last) = read(path)
    assert isinstance(dead, DeadLetter) and dead.error == error
    assert dead.origin == "lookup.jsonl:1" and dead.original == path.read_bytes().rstrip(b"\n")
    assert isinstance(post, Post) and post.id == "x:1293595870563381249"
    assert last.offset == path.stat().st_size


def test_the_accounts_a_tweet_answers_and_quotes_come_from_the_includes(
    x_v2_responses: dict[str, dict[str, Any]],
) -> None:
    response = expanded(x_v2_responses["test_client_get_tweet"])
    (tweet,) = response["data"]
    tweet["in_reply_to_user_id"] = "15"
    tweet["referenced_tweets"].append({"type": "quoted", "id": "99"})
    response["includes"]["users"] += [
        {"id": "15", "name": "Baltimore City 311", "username": "Baltimore311"},
        {"id": "16", "name": "Baltimore DOT", "username": "BmoreCityDOT"},
    ]
    response["includes"]["tweets"] = [{"id": "99", "text": "We filled it.", "author_id": "16"}]
    (post,) = [p for p in posts_from_response(response, PROVENANCE) if isinstance(p, Post)]
    assert post.thread.reply_to_author == "Baltimore311"
    assert post.thread.quoted_author == "BmoreCityDOT"


def test_unexpanded_accounts_leave_the_authors_unknown(
    x_v2_responses: dict[str, dict[str, Any]],
) -> None:
    response = expanded(x_v2_responses["test_client_get_tweet"])
    response["data"][0]["in_reply_to_user_id"] = "15"
    (post,) = [p for p in posts_from_response(response, PROVENANCE) if isinstance(p, Post)]
    assert post.thread.reply_to_author is None
    assert post.thread.quoted_author is None
