"""The live Reddit connector on praw's recorded listings and streams, and on answers written
from Reddit's documentation (deleted/removed things, a 503 page, a torn body, a refused app)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import prawcore
import pytest
from pydantic import SecretStr

from overheard.errors import ConfigError, TransientError
from overheard.ingest.live import CredentialsRejected
from overheard.ingest.reddit_stream import RedditStreams
from overheard.settings import RedditSettings
from tests.ingest.replay import CASSETTES, Feed, cassette, profile_with_subreddits

STREAM = "reddit:r/<TEST_SUBREDDIT>/comments"


def connector(subreddit: str, *streams: str) -> RedditStreams:
    settings = RedditSettings(
        client_id=SecretStr("reddit-test-client-id"),
        client_secret=SecretStr("reddit-test-client-secret"),
        streams=list(streams),
        recheck_every_h=0,
    )
    return RedditStreams.from_settings(settings, profile_with_subreddits(subreddit))


def recorded_data(name: str, index: int) -> list[dict[str, Any]]:
    """The things of one recorded listing, in the order Reddit sent them (newest first)."""
    interactions = json.loads((CASSETTES / name).read_text())["interactions"]
    listing = json.loads(interactions[index]["response"]["body"]["string"])
    return [child["data"] for child in listing["data"]["children"]]


def recorded_names(name: str, index: int) -> list[str]:
    return [data["name"] for data in recorded_data(name, index)]


@pytest.fixture(autouse=True)
def _no_prawcore_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """prawcore sleeps up to 4 s between its own retries of a 5xx; the replay needs none."""
    monkeypatch.setattr(prawcore.sessions.FiniteRetryStrategy, "_sleep_seconds", lambda _: None)


def test_a_fresh_comment_stream_sends_the_newest_page_oldest_first(tmp_path: Path) -> None:
    feed = Feed(connector("<TEST_SUBREDDIT>", "comments"), tmp_path)
    with cassette("reddit/stream_comments.json", every_answer=False):
        feed.poll()
    listed = recorded_names("reddit/stream_comments.json", 1)
    assert feed.post_ids() == [f"reddit:{name}" for name in reversed(listed)]
    assert feed.cursors.load(STREAM) == {"after": listed[0]}
    oldest = recorded_data("reddit/stream_comments.json", 1)[-1]
    first = feed.posts()[0]
    assert first["thread"] == {
        **first["thread"],
        "subreddit": "<TEST_SUBREDDIT>",
        "reply_to": f"reddit:{oldest['parent_id']}",
        "conversation": f"reddit:{oldest['link_id']}",
        "title": oldest["link_title"],
    }
    assert first["text"] == oldest["body"] and first["provenance"]["source"] == STREAM


def test_a_restart_goes_on_after_the_stored_fullname_with_no_gap_and_no_repeat(
    tmp_path: Path,
) -> None:
    """The recording praw made of `continue_after_id`: `before=<stored fullname>`."""
    feed = Feed(connector("<TEST_SUBREDDIT>", "comments"), tmp_path)
    feed.cursors.commit(STREAM, {"after": "t1_k3v0jp3"})
    with cassette("reddit/stream_comments.json", every_answer=False) as played:
        feed.poll()
    assert played.play_count == 2  # the token, then the listing asked for with before=
    listed = recorded_names("reddit/stream_comments.json", 1)
    newer = listed[: listed.index("t1_k3v0jp3")]
    assert feed.post_ids() == [f"reddit:{name}" for name in reversed(newer)]
    assert feed.cursors.load(STREAM) == {"after": newer[0]}


def test_new_submissions_keep_title_and_body(tmp_path: Path) -> None:
    feed = Feed(connector("askreddit", "submissions"), tmp_path)
    with cassette("reddit/new_askreddit.json"):
        feed.poll()
    listed = recorded_names("reddit/new_askreddit.json", 1)
    assert feed.post_ids() == [f"reddit:{name}" for name in reversed(listed)]
    assert feed.cursors.load("reddit:r/askreddit/submissions") == {"after": listed[0]}
    post = feed.posts()[-1]
    assert post["thread"]["conversation"] == post["id"] and post["thread"]["title"]
    assert post["text"].startswith(post["thread"]["title"])


def test_deleted_and_removed_comments_are_recorded_not_sent(tmp_path: Path) -> None:
    feed = Feed(connector("askreddit", "comments"), tmp_path)
    with cassette("reddit/comments_deleted_from_docs.json"):
        feed.poll()
    deleted, removed, kept = recorded_names("reddit/comments_deleted_from_docs.json", 1)
    assert feed.post_ids() == [f"reddit:{kept}"]
    assert {(d.post_id, d.reason) for d in feed.cursors.deletions()} == {
        (f"reddit:{deleted}", "deleted on Reddit"),
        (f"reddit:{removed}", "removed on Reddit"),
    }
    assert feed.cursors.load("reddit:r/askreddit/comments") == {"after": deleted}


@pytest.mark.parametrize(
    "name", ["reddit/comments_503_from_docs.json", "reddit/comments_truncated_from_docs.json"]
)
def test_a_503_page_and_a_torn_body_are_transient_and_the_retry_delivers(
    name: str, tmp_path: Path
) -> None:
    feed = Feed(connector("askreddit", "comments"), tmp_path)
    with cassette(name):
        with pytest.raises(TransientError):
            feed.poll()
        assert feed.post_ids() == [] and feed.cursors.load("reddit:r/askreddit/comments") == {}
        feed.poll()
    assert len(feed.post_ids()) == 3


def test_a_refused_app_stops_with_a_clear_message_after_one_request(tmp_path: Path) -> None:
    feed = Feed(connector("askreddit", "comments"), tmp_path)
    rejected = pytest.raises(CredentialsRejected, match="OVERHEARD_REDDIT__CLIENT_SECRET")
    with cassette("reddit/token_401_from_docs.json") as played, rejected:
        feed.poll()
    assert played.play_count == 1


def test_missing_credentials_or_subreddits_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="OVERHEARD_REDDIT__CLIENT_ID"):
        RedditStreams.from_settings(RedditSettings(), profile_with_subreddits("baltimore"))
    settings = RedditSettings(client_id=SecretStr("a"), client_secret=SecretStr("b"))
    with pytest.raises(ConfigError, match="subreddits"):
        RedditStreams.from_settings(settings, profile_with_subreddits())


def test_the_app_credentials_appear_in_no_log_and_no_cassette(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    secrets = ("reddit-test-client-id", "reddit-test-client-secret")
    feed = Feed(connector("askreddit", "comments"), tmp_path)
    with caplog.at_level(logging.DEBUG):
        with cassette("reddit/comments_askreddit.json"):
            feed.poll()
        with cassette("reddit/token_401_from_docs.json"), pytest.raises(CredentialsRejected):
            Feed(connector("askreddit", "comments"), tmp_path / "again").poll()
    captured = capfd.readouterr()
    logged = caplog.text + captured.out + captured.err
    assert "Fetching: GET https://oauth.reddit.com/r/askreddit/comments/" in logged
    for secret in secrets:
        assert secret not in logged
        for path in CASSETTES.rglob("*"):
            assert not path.is_file() or secret not in path.read_text(), path
