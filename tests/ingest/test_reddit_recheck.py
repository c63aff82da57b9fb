"""Reddit things deleted or removed after they were read: the signs recognised on real
payloads (praw's recordings) and on an `/api/info` answer written from Reddit's docs."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from overheard.ingest.cursors import CursorStore, Deletion, Sent
from overheard.ingest.reddit import gone
from overheard.ingest.reddit_client import reddit_client
from overheard.ingest.reddit_recheck import RedditRecheck
from overheard.ingest.reddit_stream import RedditStreams
from overheard.settings import RedditSettings
from tests.ingest.replay import CASSETTES, Feed, cassette, profile_with_subreddits
from tests.ingest.test_reddit_stream import recorded_data

ASKED = ["reddit:t3_48fbm9", "reddit:t3_48fbig", "reddit:t3_48fbgl", "reddit:t1_cklfmye"]
#: Asked too, but left out of the answer (its subreddit banned or private).
MISSING = "reddit:t1_zzzzzz"
GONE = [
    Deletion("reddit:t3_48fbig", "removed on Reddit (moderator)"),
    Deletion("reddit:t3_48fbgl", "removed on Reddit (deleted)"),
    Deletion("reddit:t1_cklfmye", "removed on Reddit"),
    Deletion(MISSING, "no longer on Reddit (/api/info does not return it)"),
]


def settings(**changes: object) -> RedditSettings:
    return RedditSettings(
        client_id=SecretStr("reddit-recheck-client-id"),
        client_secret=SecretStr("reddit-recheck-client-secret"),
        **changes,
    )


def asked_urls(recheck: RedditRecheck) -> list[str]:
    """The URLs praw asks, as sent."""
    urls: list[str] = []
    http = recheck._reddit._core._authorizer._authenticator._requestor._http
    http.hooks["response"].append(lambda r, **_: urls.append(r.request.url))
    return urls


# --- the signs, on real payloads ----------------------------------------------------------


def test_removed_by_category_marks_a_submission_removed_whatever_its_text() -> None:
    (submission, *_) = recorded_data("reddit/new_askreddit.json", 1)
    assert gone(submission, "t3") is None  # a live submission, recorded before the field existed
    for category in ("moderator", "deleted", "reddit", "copyright_takedown"):
        removed = {**submission, "removed_by_category": category}
        assert removed["selftext"] == submission["selftext"]  # the text itself untouched
        assert gone(removed, "t3") == f"removed on Reddit ({category})"
    assert gone({**submission, "removed_by_category": None}, "t3") is None


def test_real_submissions_and_comments_that_are_up_are_not_gone() -> None:
    submissions = recorded_data("reddit/new_askreddit.json", 1)
    comments = recorded_data("reddit/comments_askreddit.json", 1)
    assert [gone(s, "t3") for s in submissions] == [None] * len(submissions)
    assert [gone(c, "t1") for c in comments] == [None] * len(comments)


def test_a_comment_under_a_deleted_submission_is_itself_still_there() -> None:
    # praw's 2023 stream recording: live comments whose submission's author is [deleted].
    comments = recorded_data("reddit/stream_comments.json", 1)
    orphans = [c for c in comments if c.get("link_author") == "[deleted]"]
    assert orphans
    assert [gone(c, "t1") for c in orphans] == [None] * len(orphans)


@pytest.mark.parametrize(
    ("kind", "changes", "reason"),
    [
        ("t1", {"body": "[deleted]", "author": "[deleted]"}, "deleted on Reddit"),
        ("t1", {"body": "[removed]"}, "removed on Reddit"),
        ("t1", {"author": "[deleted]"}, "its author's Reddit account was deleted"),
        ("t3", {"selftext": "[removed]"}, "removed on Reddit"),
        ("t3", {"selftext": "[deleted]", "author": "[deleted]"}, "deleted on Reddit"),
    ],
)
def test_replaced_text_or_author_marks_a_thing_gone(
    kind: str, changes: dict[str, Any], reason: str
) -> None:
    name = "reddit/comments_askreddit.json" if kind == "t1" else "reddit/new_askreddit.json"
    thing = copy.deepcopy(recorded_data(name, 1)[0])
    thing.update(changes)
    assert gone(thing, kind) == reason  # type: ignore[arg-type]


# --- /api/info ----------------------------------------------------------------------------


def test_info_reports_the_removed_the_deleted_and_the_vanished() -> None:
    recheck = RedditRecheck(reddit_client(settings()))
    urls = asked_urls(recheck)
    with cassette("reddit/info_removed_from_docs.json"):
        found = recheck.check([*ASKED, MISSING])
    assert found == GONE
    (url,) = [u for u in urls if "/api/info" in u]  # one request: up to 100 fullnames
    asked = parse_qs(urlsplit(url).query)["id"]
    assert asked == [",".join(p.removeprefix("reddit:") for p in [*ASKED, MISSING])]


def test_a_recorded_comment_that_is_up_is_not_reported() -> None:
    recheck = RedditRecheck(reddit_client(settings()))
    with cassette("reddit/info_comment.json"):
        assert recheck.check(["reddit:t1_cklfmye"]) == []


def test_a_poll_rechecks_the_posts_sent_first(tmp_path: Path) -> None:
    streams = RedditStreams.from_settings(
        settings(streams=[]), profile_with_subreddits("askreddit")
    )
    feed = Feed(streams, tmp_path)
    day = datetime(2026, 11, 1, tzinfo=UTC)
    feed.cursors.commit("reddit:seed", {}, sent=[Sent(p, day) for p in [*ASKED, MISSING]])
    with cassette("reddit/info_removed_from_docs.json"):
        feed.poll()
    assert set(feed.cursors.deletions()) == set(GONE)
    assert feed.cursors.sent_ids("reddit") == ["reddit:t3_48fbm9"]
    assert feed.cursors.load("reddit:recheck")["gone"] == len(GONE)
    with cassette("reddit/info_removed_from_docs.json", every_answer=False) as played:
        feed.poll()  # not due again before reddit.recheck_every_h
    assert played.play_count == 0
    reopened = CursorStore(tmp_path / "live.sqlite")
    assert reopened.load("reddit:recheck") == feed.cursors.load("reddit:recheck")


def test_no_secret_reaches_the_log_or_the_cassettes(caplog: pytest.LogCaptureFixture) -> None:
    secrets = ("reddit-recheck-client-id", "reddit-recheck-client-secret")
    recheck = RedditRecheck(reddit_client(settings()))
    with caplog.at_level(logging.DEBUG), cassette("reddit/info_removed_from_docs.json"):
        recheck.check([*ASKED, MISSING])
    assert "api/info" in caplog.text  # prawcore did log its requests
    for secret in secrets:
        assert secret not in caplog.text
    for path in (CASSETTES / "reddit").glob("info_*.json"):
        text = path.read_text()
        assert "<BASIC_AUTH>" in text and "<ACCESS_TOKEN>" in text  # masked by praw's recording
        assert all(secret not in text for secret in secrets)
