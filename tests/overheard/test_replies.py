"""Acknowledgement replies: drafted when 311 gives a request id, posted only once approved,
and once even when the poster stops mid-post."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from overheard.audit import REPLY, AuditLog
from overheard.cli import app
from overheard.forget import forget
from overheard.model import Issue
from overheard.paths import CONFIG_DIR
from overheard.privacy import Pseudonymiser
from overheard.replies import (
    APPROVED,
    AWAITING_ID,
    DRAFT,
    POSTED,
    POSTING,
    REJECTED,
    ReplyQueue,
    post_approved,
)
from overheard.settings import AuditSettings, Open311Settings, PrivacySettings, Settings
from overheard.sinks.base import WRITTEN
from overheard.sinks.registry import create_sink
from overheard.testing.open311_process import Open311Server
from overheard.testing.sink_kit import make_issue

OPEN311_KEY = "replies-test-open311-key"
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
CODES = ("BGE-StLight(s) Out", "SW-Dirty Alley")


def filed_issue(n: int) -> Issue:
    issue = make_issue(n, located=True)
    category = issue.category.model_copy(update={"service_code": CODES[n % len(CODES)]})
    return issue.model_copy(update={"category": category})


@pytest.fixture(scope="module")
def open311_server() -> Iterator[Open311Server]:
    with Open311Server.start(services="baltimore", api_key=OPEN311_KEY) as running:
        yield running


def settings_for(tmp_path: Path, server: Open311Server, auto_reply: list[str]) -> Settings:
    profile = (CONFIG_DIR / "cities" / "baltimore.toml").read_text()
    profile = profile.replace(
        'template = "Thanks, this was reported to Baltimore City 311 as request {request_id}."',
        'template = "Thanks! 311 request {request_id}: {url}"\n'
        'url = "https://311.example.gov/r/{request_id}"',
    ).replace("auto_reply = []", f"auto_reply = {auto_reply!r}".replace("'", '"'))
    (tmp_path / "city.toml").write_text(profile)
    return Settings(
        city=str(tmp_path / "city.toml"),
        sinks=["open311"],
        open311=Open311Settings(
            endpoint=server.url,
            api_key=SecretStr(OPEN311_KEY),
            ledger_url=f"sqlite:///{tmp_path}/ledger.db",
        ),
        privacy=PrivacySettings(author_key=SecretStr("k")),
        audit=AuditSettings(url=f"sqlite:///{tmp_path}/audit.db"),
    )


def file_issues(settings: Settings, issues: list[Issue]) -> None:
    sink = create_sink("open311", settings)
    sink.open()
    assert sink.write(issues) == [WRITTEN] * len(issues)
    sink.close()


class FakeReplier:
    """A platform that keeps the replies posted; `stop_after_post` simulates a crash after
    the platform accepted a reply but before the poster recorded it."""

    def __init__(self) -> None:
        self.posted: dict[str, tuple[str, str]] = {}
        self.stop_after_post = False

    def post(self, post_id: str, text: str) -> str:
        reply_id = f"reply-{len(self.posted) + 1}"
        self.posted[reply_id] = (post_id, text)
        if self.stop_after_post:
            raise KeyboardInterrupt("the process stopped mid-post")
        return reply_id

    def find(self, post_id: str, text: str) -> str | None:
        found = [rid for rid, (p, t) in self.posted.items() if (p, t) == (post_id, text)]
        return found[0] if found else None


def test_a_filed_request_gets_a_draft_in_the_profiles_words_and_waits(
    tmp_path: Path, open311_server: Open311Server
) -> None:
    open311_server.reset()
    settings = settings_for(tmp_path, open311_server, auto_reply=[])
    issues = [filed_issue(0), filed_issue(1)]
    file_issues(settings, issues)
    file_issues(settings, issues)  # redelivered: still one draft each

    queue = ReplyQueue(AuditLog.from_settings(settings))
    drafts = queue.list()
    assert [(d.issue_id, d.state) for d in drafts] == [(i.id, DRAFT) for i in issues]
    request_id = drafts[0].service_request_id
    assert (
        drafts[0].text
        == f"Thanks! 311 request {request_id}: https://311.example.gov/r/{request_id}"
    )
    assert drafts[0].post_id == issues[0].post.id

    replier = FakeReplier()
    assert post_approved(queue, replier, NOW) == 0
    assert replier.posted == {}, "nothing is posted without approval"

    assert queue.review(issues[0].id, approve=True, reviewer="cli:officer", now=NOW)
    assert queue.review(issues[1].id, approve=False, reviewer="cli:officer", now=NOW)
    assert not queue.review(issues[1].id, approve=True, reviewer="cli:officer", now=NOW)
    assert post_approved(queue, replier, NOW) == 1
    assert list(replier.posted.values()) == [(issues[0].post.id, drafts[0].text)]
    assert post_approved(queue, replier, NOW) == 0
    states = {r.issue_id: (r.state, r.reply_id) for r in queue.list()}
    assert states == {issues[0].id: (POSTED, "reply-1"), issues[1].id: (REJECTED, None)}
    actors = [(e.actor, e.detail["state"]) for e in queue.audit.entries(REPLY)]
    assert actors == [("cli:officer", APPROVED), ("cli:officer", REJECTED), ("replies", POSTED)]


def test_an_auto_reply_category_is_approved_without_review(
    tmp_path: Path, open311_server: Open311Server
) -> None:
    open311_server.reset()
    auto = filed_issue(0)
    settings = settings_for(tmp_path, open311_server, auto_reply=[auto.category.name])
    file_issues(settings, [auto, filed_issue(1)])
    queue = ReplyQueue(AuditLog.from_settings(settings))
    assert {r.issue_id: r.state for r in queue.list()} == {
        auto.id: APPROVED,
        filed_issue(1).id: DRAFT,
    }


def test_a_reply_interrupted_mid_post_is_posted_once_after_a_restart(
    tmp_path: Path, open311_server: Open311Server
) -> None:
    open311_server.reset()
    settings = settings_for(tmp_path, open311_server, auto_reply=[])
    issue = filed_issue(0)
    file_issues(settings, [issue])
    queue = ReplyQueue(AuditLog.from_settings(settings))
    queue.review(issue.id, approve=True, reviewer="cli:officer", now=NOW)

    platform = FakeReplier()
    platform.stop_after_post = True
    with pytest.raises(KeyboardInterrupt):
        post_approved(queue, platform, NOW)
    assert queue.get(issue.id).state == POSTING  # type: ignore[union-attr]

    platform.stop_after_post = False
    restarted = ReplyQueue(AuditLog.from_settings(settings))
    assert post_approved(restarted, platform, NOW) == 1
    assert len(platform.posted) == 1, "found on the platform, not posted again"
    reply = restarted.get(issue.id)
    assert reply is not None and (reply.state, reply.reply_id) == (POSTED, "reply-1")


def test_the_replies_commands_list_approve_and_reject(
    tmp_path: Path, open311_server: Open311Server
) -> None:
    open311_server.reset()
    settings = settings_for(tmp_path, open311_server, auto_reply=[])
    issues = [filed_issue(0), filed_issue(1)]
    file_issues(settings, issues)
    env = {
        "OVERHEARD_CITY": settings.city,
        "OVERHEARD_SINKS": '["open311"]',
        "OVERHEARD_AUDIT__URL": str(settings.audit.url),
    }
    runner = CliRunner()
    listed = runner.invoke(app, ["replies", "list"], env={**env, "COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert str(issues[0].id) in listed.output and "draft" in listed.output
    assert runner.invoke(app, ["replies", "approve", str(issues[0].id)], env=env).exit_code == 0
    assert runner.invoke(app, ["replies", "reject", str(issues[1].id)], env=env).exit_code == 0
    again = runner.invoke(app, ["replies", "approve", str(issues[1].id)], env=env)
    assert again.exit_code == 1 and "no draft" in again.output
    queue = ReplyQueue(AuditLog.from_settings(settings))
    assert {r.issue_id: r.state for r in queue.list()} == {
        issues[0].id: APPROVED,
        issues[1].id: REJECTED,
    }


def test_forgetting_a_post_withdraws_its_unposted_reply(
    tmp_path: Path, open311_server: Open311Server
) -> None:
    open311_server.reset()
    settings = settings_for(tmp_path, open311_server, auto_reply=[])
    issue = filed_issue(0)
    file_issues(settings, [issue])
    audit_log = AuditLog.from_settings(settings)
    queue = ReplyQueue(audit_log)
    queue.review(issue.id, approve=True, reviewer="cli:officer", now=NOW)
    forget([], audit_log, Pseudonymiser.from_settings(settings), actor="t", post_id=issue.post.id)
    reply = queue.get(issue.id)
    assert reply is not None and (reply.state, reply.reviewed_by) == (REJECTED, "t")
    platform = FakeReplier()
    assert post_approved(queue, platform, NOW) == 0 and platform.posted == {}


def test_forgetting_an_author_withdraws_their_unposted_replies(
    tmp_path: Path, open311_server: Open311Server
) -> None:
    open311_server.reset()
    settings = settings_for(tmp_path, open311_server, auto_reply=[])
    issue = filed_issue(0)
    file_issues(settings, [issue])
    audit_log = AuditLog.from_settings(settings)
    queue = ReplyQueue(audit_log)
    pseudonymiser = Pseudonymiser.from_settings(settings)
    reply = queue.get(issue.id)
    assert reply is not None and reply.author_key is not None
    assert issue.post.author.id is not None
    assert reply.author_key == pseudonymiser.key_of(issue.post.author.id)
    forget([], audit_log, pseudonymiser, actor="t", author_id=issue.post.author.id)
    reply = queue.get(issue.id)
    assert reply is not None and (reply.state, reply.reviewed_by) == (REJECTED, "t")


def test_a_batch_token_gets_its_draft_once_the_city_gives_the_request_id(
    tmp_path: Path, open311_server: Open311Server
) -> None:
    open311_server.reset()
    open311_server.control(tokens=True, token_pending=1)
    try:
        settings = settings_for(tmp_path, open311_server, auto_reply=[])
        first, second = filed_issue(0), filed_issue(1)
        file_issues(settings, [first])
        queue = ReplyQueue(AuditLog.from_settings(settings))
        (waiting,) = queue.list()
        assert (waiting.state, waiting.service_request_id, waiting.text) == (AWAITING_ID, None, "")
        file_issues(settings, [second])  # the next write resolves the first token
        reply = queue.get(first.id)
        assert reply is not None and reply.state == DRAFT
        assert reply.service_request_id is not None
        assert reply.text.startswith(f"Thanks! 311 request {reply.service_request_id}")
        assert post_approved(queue, FakeReplier(), NOW) == 0  # still needs approval
    finally:
        open311_server.reset()
