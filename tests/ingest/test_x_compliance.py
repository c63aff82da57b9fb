"""X's batch compliance on answers written from X's API v2 docs: the posts sent that X
reports deleted become deletions, checked first in a poll when due."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from overheard.errors import TransientError
from overheard.ingest.cursors import CursorStore, Deletion, Sent
from overheard.ingest.recheck import due, recheck, recheck_if_due
from overheard.ingest.x_compliance import XCompliance
from overheard.ingest.x_search import XSearch
from overheard.profile import load_profile
from overheard.settings import XSettings
from tests.ingest.replay import Feed, cassette
from tests.ingest.test_x_search import RECORDED_IDS

TOKEN = "x-test-compliance-bearer-token"
DELETED = [
    Deletion("x:1578515564971970560", "deleted on X (compliance: deleted)"),
    Deletion("x:1578514055010324480", "deleted on X (compliance: suspended)"),
]
SENT_AT = datetime(2022, 10, 7, 22, 30, tzinfo=UTC)


def settings(**changes: object) -> XSettings:
    return XSettings(
        bearer_token=SecretStr(TOKEN), compliance_poll_s=0.01, rate_limit_wait_s=0.01
    ).model_copy(update=changes)


def transfers_of(compliance: XCompliance) -> list[requests.PreparedRequest]:
    """Every request made to the signed storage URLs, as sent."""
    sent: list[requests.PreparedRequest] = []
    compliance.transfers.hooks["response"].append(lambda r, **_: sent.append(r.request))
    return sent


def seeded(path: Path, ids: list[str]) -> CursorStore:
    """A cursor store that sent the posts `ids` (X ids) an hour apart, oldest last."""
    store = CursorStore(path / "live.sqlite")
    sent = [Sent(f"x:{n}", SENT_AT - timedelta(hours=i)) for i, n in enumerate(ids)]
    store.commit("x:search:seed", {"since_id": ids[0]}, sent=sent)
    return store


def test_the_posts_x_reports_deleted_become_deletions() -> None:
    compliance = XCompliance.from_settings(settings(), threading.Event())
    transfers = transfers_of(compliance)
    with cassette("x/compliance_from_docs.yaml"):
        found = compliance.check([f"x:{n}" for n in RECORDED_IDS])
    assert found == DELETED
    upload, download = transfers
    assert upload.method == "PUT" and download.method == "GET"
    assert upload.body == "\n".join(RECORDED_IDS).encode()
    assert upload.headers["Content-Type"] == "text/plain"
    # The signed URLs are credentials of their own: the bearer token never goes there.
    assert "Authorization" not in upload.headers and "Authorization" not in download.headers


def test_a_failed_job_is_transient_so_the_whole_check_runs_again() -> None:
    compliance = XCompliance.from_settings(settings(), threading.Event())
    with (
        cassette("x/compliance_failed_from_docs.yaml"),
        pytest.raises(TransientError, match="ended failed"),
    ):
        compliance.check(["x:1578515564971970560"])


def test_a_job_not_done_in_time_is_given_up_and_tried_again_later() -> None:
    compliance = XCompliance.from_settings(settings(compliance_wait_max_s=0.001), threading.Event())
    with (
        cassette("x/compliance_from_docs.yaml", every_answer=False),
        pytest.raises(TransientError, match="compliance_wait_max_s"),
    ):
        compliance.check(["x:1578515564971970560"])


def test_a_poll_checks_the_posts_sent_first_then_searches(tmp_path: Path) -> None:
    x = XSearch.from_settings(settings(), load_profile("baltimore"), threading.Event())
    x.queries = x.queries[:1]
    feed = Feed(x, tmp_path)
    feed.cursors = seeded(tmp_path, RECORDED_IDS)
    with cassette("x/compliance_then_search_from_docs.yaml"):
        feed.poll()
    assert set(DELETED) <= set(feed.cursors.deletions())
    checked = feed.cursors.load("x:compliance")
    assert (checked["checked"], checked["gone"]) == (len(RECORDED_IDS), 2)
    # The search pages went out after the check, and are now among the posts to check.
    assert len(feed.post_ids()) == 12
    assert "x:1578510000000000001" in feed.cursors.sent_ids("x")
    # The next check waits x.compliance_every_h from this one.
    now = datetime.fromisoformat(checked["checked_at"])
    assert not due(feed.cursors, "x:compliance", 24, now + timedelta(hours=23))
    assert due(feed.cursors, "x:compliance", 24, now + timedelta(hours=24))
    assert not due(feed.cursors, "x:compliance", 0, now + timedelta(days=365))


def test_posts_older_than_any_sink_keeps_text_are_not_asked_about(tmp_path: Path) -> None:
    store = seeded(tmp_path, RECORDED_IDS)
    compliance = XCompliance.from_settings(settings(), threading.Event())
    transfers = transfers_of(compliance)
    # Sinks keep text 0 days, and it is the time of the newest post: only that one is left.
    with cassette("x/compliance_from_docs.yaml"):
        batch = recheck(compliance, store, 0, SENT_AT)
    assert transfers[0].body == RECORDED_IDS[0].encode()
    assert batch.cursor["checked"] == 1
    assert store.sent_ids("x") == [f"x:{RECORDED_IDS[0]}"]


def test_no_secret_reaches_the_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    compliance = XCompliance.from_settings(settings(), threading.Event())
    with caplog.at_level(logging.DEBUG), cassette("x/compliance_from_docs.yaml"):
        compliance.check([f"x:{n}" for n in RECORDED_IDS])
    # vcrpy's own log (the test's, not overheard's) prints the cassette's URLs.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("vcr"))
    assert "compliance/jobs" in logged  # tweepy did log its requests
    assert TOKEN not in logged
    assert "X-Goog-Signature=<SIGNATURE>" not in logged
    assert "X-Goog-Signature=%3CSIGNATURE%3E" not in logged


def test_a_failed_check_holds_up_no_poll_and_is_tried_again_an_hour_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = seeded(tmp_path, RECORDED_IDS)
    compliance = XCompliance.from_settings(settings(), threading.Event())
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    with cassette("x/compliance_failed_from_docs.yaml"), caplog.at_level(logging.WARNING):
        (batch,) = recheck_if_due(compliance, store, 24, None, clock=lambda: now)
    assert "the deletion check failed" in caplog.text
    assert batch.deletions == [] and batch.cursor == {"failed_at": now.isoformat()}
    store.commit(batch.stream, batch.cursor)
    assert not due(store, "x:compliance", 24, now + timedelta(minutes=59))
    assert due(store, "x:compliance", 24, now + timedelta(hours=1))
    assert store.sent_ids("x") == [f"x:{n}" for n in reversed(RECORDED_IDS)]
