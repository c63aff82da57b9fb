"""Approved replies posted through tweepy and praw, on exchanges written from the platforms'
documentation (tests/overheard/cassettes/*_from_docs.*): posted once, even when the process
stops after the platform accepted the reply and before it was recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import praw
import pytest
import tweepy
import vcr
from typer.testing import CliRunner
from vcr.cassette import Cassette

from overheard.audit import AuditLog
from overheard.cli import app
from overheard.model import Platform, Post
from overheard.profile import RepliesProfile
from overheard.replies import POSTED, POSTING, Replier, ReplyQueue, post_approved
from overheard.reply_platforms import RedditReplier, XReplier, native_id
from overheard.testing.sink_kit import make_issue

CASSETTES = Path(__file__).resolve().parent / "cassettes"
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
X_ACCOUNT = "1136048014974423040"

_VCR = vcr.VCR(record_mode="none", match_on=["method", "host", "path"])


@contextmanager
def cassette(name: str) -> Iterator[Cassette]:
    serializer = "json" if name.endswith(".json") else "yaml"
    with _VCR.use_cassette(str(CASSETTES / name), serializer=serializer) as played:
        yield played
    assert played.all_played, f"{name}: {len(played) - played.play_count} answers unused"


class StopsAfterPosting:
    """The process stops right after the platform accepted the reply."""

    def __init__(self, inner: Replier) -> None:
        self.inner = inner

    def post(self, post_id: str, text: str) -> str:
        self.inner.post(post_id, text)
        raise KeyboardInterrupt("stopped before recording the reply")

    def find(self, post_id: str, text: str) -> str | None:
        return self.inner.find(post_id, text)


def approved_reply(tmp_path: Path, platform: Platform, native: str, request_id: str) -> ReplyQueue:
    issue = make_issue(0)
    post = issue.post.model_copy(
        update={"id": Post.make_id(platform, native), "platform": platform}
    )
    issue = issue.model_copy(update={"post": post})
    queue = ReplyQueue(AuditLog(f"sqlite:///{tmp_path}/audit.db"))
    replies = RepliesProfile(
        template="Thanks, this was reported to Baltimore City 311 as request {request_id}."
    )
    assert queue.draft(issue, request_id, replies, NOW)
    assert queue.review(issue.id, approve=True, reviewer="cli:officer", now=NOW)
    return queue


def test_native_ids() -> None:
    assert native_id("x:1460323621948293121", "x") == "1460323621948293121"
    assert native_id("reddit:t1_kit00000", "reddit") == "t1_kit00000"
    with pytest.raises(ValueError):
        native_id("reddit:t1_kit00000", "x")


def test_x_reply_is_posted_once_across_a_stop_mid_post(tmp_path: Path) -> None:
    queue = approved_reply(tmp_path, Platform.X, "1460323621948293121", "26-00001")
    x = XReplier(tweepy.Client(bearer_token="city-user-token"), X_ACCOUNT)
    with cassette("x_reply_then_lookup_from_docs.yaml"):
        with pytest.raises(KeyboardInterrupt):
            post_approved(queue, StopsAfterPosting(x), NOW)
        (reply,) = queue.list()
        assert reply.state == POSTING
        # Restarted: the reply is found in the account's timeline, not posted again
        # (the cassette holds one POST; a second would find no answer).
        assert post_approved(queue, x, NOW) == 1
    (reply,) = queue.list()
    assert (reply.state, reply.reply_id) == (POSTED, "1460323737035677698")


def test_reddit_reply_is_posted_once_across_a_stop_mid_post(tmp_path: Path) -> None:
    queue = approved_reply(tmp_path, Platform.REDDIT, "t1_kit00000", "26-00002")
    reddit = praw.Reddit(
        client_id="city-app",
        client_secret="city-app-secret",
        username="BaltimoreCity311",
        password="city-password",
        user_agent="overheard tests",
    )
    with cassette("reddit_reply_then_lookup_from_docs.json"):
        with pytest.raises(KeyboardInterrupt):
            post_approved(queue, StopsAfterPosting(RedditReplier(reddit)), NOW)
        assert post_approved(queue, RedditReplier(reddit), NOW) == 1
    (reply,) = queue.list()
    assert (reply.state, reply.reply_id) == (POSTED, "t1_k0reply")


def test_the_post_command_posts_approved_replies_with_the_configured_account(
    tmp_path: Path,
) -> None:
    approved_reply(tmp_path, Platform.X, "1460323621948293121", "26-00001")
    env = {
        "OVERHEARD_AUDIT__URL": f"sqlite:///{tmp_path}/audit.db",
        "OVERHEARD_REPLIES__X_USER_TOKEN": "city-user-token",
        "OVERHEARD_REPLIES__X_USER_ID": X_ACCOUNT,
    }
    with _VCR.use_cassette(str(CASSETTES / "x_reply_then_lookup_from_docs.yaml")) as played:
        result = CliRunner().invoke(app, ["replies", "post"], env=env)
        again = CliRunner().invoke(app, ["replies", "post"], env=env)
    assert result.exit_code == 0, result.output
    assert "x: 1 reply posted" in result.output
    assert "x: 0 replies posted" in again.output
    assert played.play_count == 1  # the POST; nothing asked twice
    assert "city-user-token" not in result.output


def test_the_post_command_needs_an_account(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["replies", "post"], env={"OVERHEARD_AUDIT__URL": f"sqlite:///{tmp_path}/a.db"}
    )
    assert result.exit_code == 2 and "no reply account" in result.output
