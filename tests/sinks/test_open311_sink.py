"""The open311 sink against the Open311 test server, over real HTTP to its subprocess."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from overheard.bus.base import Topics
from overheard.bus.memory import MemoryBus
from overheard.errors import ConfigError, TransientError
from overheard.model import Issue, Precision
from overheard.profile import ClustersProfile
from overheard.settings import Open311Settings, RetrySettings, Settings
from overheard.sinks.base import WRITTEN, Rejected, Retaining, Retry
from overheard.sinks.open311 import (
    FILED,
    FILED_BLACKBOX,
    POSTING,
    TOKEN,
    Open311SetupError,
    Open311Sink,
    _retry_after,
    describe_issue,
    from_settings,
    is_issue_id_attribute,
)
from overheard.stages import SinkStage, StageRunner
from overheard.summary import Summary
from overheard.testing.open311_process import Open311Server
from tests.factories import make_issue

ROOT = Path(__file__).resolve().parents[2]
KEY = "open311-test-key-5f2c9e71"
ALLEY = "SW-Dirty Alley"
GRAFFITI = "SW-Graffiti Removal"
POTHOLE = "TRM-Pothole Repair"
FAST = RetrySettings(initial_s=0.01, max_s=0.05)
TOPICS = Topics.for_city("test", "baltimore")


def alley(native_id: str = "t3_alley1", **kwargs: Any) -> Issue:
    """An issue filed under a service with no required attribute."""
    return make_issue(native_id, category="dirty alley", service_code=ALLEY, **kwargs)


@pytest.fixture(scope="module")
def server() -> Iterator[Open311Server]:
    with Open311Server.start(services="baltimore", api_key=KEY) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_server(server: Open311Server) -> None:
    server.reset()
    server.clear()


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


SinkFactory = Callable[..., Open311Sink]


@pytest.fixture
def make_sink(server: Open311Server, ledger_url: str) -> Iterator[SinkFactory]:
    """Builds and opens sinks against the server (closed at the end of the test)."""
    sinks: list[Open311Sink] = []

    def build(
        *,
        api_key: str = KEY,
        timeout_s: float = 10.0,
        endpoint: str | None = None,
        jurisdiction_id: str | None = None,
        opened: bool = True,
        concurrency: int = 4,
        clusters: ClustersProfile | None = None,
        updates: bool = False,
    ) -> Open311Sink:
        sink = Open311Sink(
            endpoint or server.url,
            api_key,
            jurisdiction_id,
            ledger_url,
            timeout_s,
            concurrency=concurrency,
            clusters=clusters,
            updates=updates,
        )
        sinks.append(sink)
        if opened:
            sink.open()
        return sink

    yield build
    for sink in sinks:
        sink.close()


@pytest.fixture
def sink(make_sink: SinkFactory) -> Open311Sink:
    return make_sink()


def assert_filed(sink: Open311Sink, issue: Issue, service_request_id: str) -> None:
    """The ledger records the issue as filed under this service request."""
    entry = sink.ledger_entry(issue.id)
    assert entry is not None
    assert (entry.state, entry.service_request_id) == (FILED, service_request_id)


def posts(server: Open311Server) -> list[dict[str, Any]]:
    """Every POST the server received, whatever it answered."""
    return [r for r in server.received() if r["method"] == "POST"]


# -------------------------------------------------------------- filing


def test_files_a_realtime_request_with_every_field(
    server: Open311Server, sink: Open311Sink
) -> None:
    issue = alley()
    assert sink.write([issue]) == [WRITTEN]
    (record,) = server.requests()
    form = record["form"]
    assert form["api_key"] == KEY
    assert form["service_code"] == ALLEY
    assert (float(form["lat"]), float(form["long"])) == (39.2906, -76.5790)
    assert form["description"] == (
        f"{issue.post.text}\n\noverheard issue {issue.id}: {issue.post.url}"
    )
    assert form["media_url"] == issue.post.url
    assert "jurisdiction_id" not in form
    assert not [name for name in form if name.startswith("attribute[")]
    assert record["type"] == "realtime"
    entry = sink.ledger_entry(issue.id)
    assert entry is not None
    assert entry.state == FILED
    assert entry.service_request_id == record["request"]["service_request_id"]
    assert entry.service_code == ALLEY
    assert entry.intent_at <= entry.updated_at


def test_an_issue_the_profile_routes_elsewhere_is_not_filed(
    server: Open311Server, sink: Open311Sink
) -> None:
    urgent = alley().model_copy(update={"urgent": True, "to_311": False})
    assert sink.write([urgent]) == [WRITTEN]
    assert server.requests() == []
    assert sink.ledger_entry(urgent.id) is None


def test_a_redelivered_issue_is_written_without_a_second_post(
    server: Open311Server, sink: Open311Sink, make_sink: SinkFactory
) -> None:
    issue, other = alley("t3_one"), alley("t3_two")
    assert sink.write([issue, other, issue]) == [WRITTEN] * 3
    assert sink.write([issue]) == [WRITTEN]
    assert make_sink().write([other, issue]) == [WRITTEN, WRITTEN]  # after a restart
    assert len(server.requests()) == 2
    assert len(posts(server)) == 2


def test_a_batch_token_is_written_and_resolved_later(
    server: Open311Server, sink: Open311Sink
) -> None:
    server.control(tokens=True, token_pending=1)
    issue = alley()
    assert sink.write([issue]) == [WRITTEN]
    entry = sink.ledger_entry(issue.id)
    assert entry is not None
    assert entry.state == TOKEN
    (record,) = server.requests()
    assert entry.token == record["token"]
    assert sink.resolve_tokens() == 0  # the server has no id for it yet
    assert sink.ledger_entry(issue.id).state == TOKEN  # type: ignore[union-attr]
    assert sink.resolve_tokens() == 1
    entry = sink.ledger_entry(issue.id)
    assert entry is not None
    assert (entry.state, entry.token) == (FILED, record["token"])
    assert entry.service_request_id == record["request"]["service_request_id"]
    assert sink.resolve_tokens() == 0
    assert sink.write([issue]) == [WRITTEN]  # filed already: no second POST
    assert len(posts(server)) == 1


def test_pending_tokens_are_resolved_by_the_next_open_and_write(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    server.control(tokens=True, token_pending=1)
    first, second = alley("t3_first"), alley("t3_second")
    sink = make_sink()
    assert sink.write([first]) == [WRITTEN]
    restarted = make_sink()  # open: the token answers no id yet
    assert restarted.ledger_entry(first.id).state == TOKEN  # type: ignore[union-attr]
    assert restarted.write([second]) == [WRITTEN]  # write resolves the first one first
    assert restarted.ledger_entry(first.id).state == FILED  # type: ignore[union-attr]
    assert restarted.ledger_entry(second.id).state == TOKEN  # type: ignore[union-attr]


def test_a_blackbox_service_is_filed_without_an_id(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    server.control(service_types={ALLEY: "blackbox"})
    sink = make_sink()
    issue = alley()
    assert sink.write([issue]) == [WRITTEN]
    entry = sink.ledger_entry(issue.id)
    assert entry is not None
    assert (entry.state, entry.service_request_id, entry.token) == (FILED_BLACKBOX, None, None)
    assert sink.write([issue]) == [WRITTEN]
    assert len(posts(server)) == 1


# -------------------------------------------------------------- refused before any HTTP call


@pytest.mark.parametrize(
    ("issue", "reason"),
    [
        (alley(located=False), "no location"),
        (make_issue(category="weather", service_code=None), "no service code for category weather"),
        (make_issue(service_code="XX-Not Offered"), "'XX-Not Offered'"),
        (make_issue(), "requires attribute LOCATION_TYPE that overheard cannot fill"),
        (
            make_issue(category="dumping", service_code="HCD-Illegal Dumping"),
            "requires attribute MATERIAL that overheard cannot fill",
        ),
    ],
    ids=["no-location", "no-service-code", "not-offered", "pothole-attribute", "dumping-attribute"],
)
def test_what_can_never_be_filed_is_rejected_without_a_request(
    server: Open311Server, sink: Open311Sink, issue: Issue, reason: str
) -> None:
    server.clear()  # forget discovery
    (outcome,) = sink.write([issue])
    assert isinstance(outcome, Rejected)
    assert reason in outcome.reason
    assert server.received() == []
    assert sink.ledger_entry(issue.id) is None


def test_a_long_description_is_cut_cleanly(server: Open311Server, sink: Open311Sink) -> None:
    words = " ".join(f"word{n}" for n in range(1200))  # about 9,000 characters
    issue = alley(text=f"Trash all over the alley by Eastern Ave near Linwood. {words}")
    assert sink.write([issue]) == [WRITTEN]
    description = server.requests()[0]["form"]["description"]
    assert len(description) <= 4000
    text, footer = description.rsplit("\n\n", 1)
    assert footer == f"overheard issue {issue.id}: {issue.post.url}"
    assert text.endswith("…")
    assert text[:-1].split()[-1] in words.split()  # cut between words, not inside one
    assert describe_issue(issue) == description


# -------------------------------------------------------------- error mapping


def test_a_400_error_list_rejects_with_the_spec_code(
    server: Open311Server, sink: Open311Sink
) -> None:
    server.control(fail_next=[{"status": 400, "method": "POST"}])
    issue = alley()
    (outcome,) = sink.write([issue])
    assert isinstance(outcome, Rejected)
    assert "answered 400: 400 Injected failure: HTTP 400." in outcome.reason
    assert sink.ledger_entry(issue.id) is None  # the server filed nothing
    assert server.requests() == []


def test_a_404_rejects_as_an_unknown_service(server: Open311Server, sink: Open311Sink) -> None:
    server.control(fail_next=[{"status": 404, "method": "POST"}])
    (outcome,) = sink.write([alley()])
    assert isinstance(outcome, Rejected)
    assert "answered 404" in outcome.reason


def test_a_404_that_is_not_open311_stops_loudly(server: Open311Server, sink: Open311Sink) -> None:
    server.control(fail_next=[{"status": 404, "method": "POST", "body": "html"}])
    with pytest.raises(Open311SetupError, match="is the endpoint right"):
        sink.write([alley()])


def test_a_wrong_api_key_stops_loudly(server: Open311Server, make_sink: SinkFactory) -> None:
    wrong = "wrong-key-0a1b2c3d"
    sink = make_sink(api_key=wrong)
    issue = alley()
    with pytest.raises(ConfigError) as raised:
        sink.write([issue])
    assert isinstance(raised.value, Open311SetupError)
    assert "403" in str(raised.value)
    assert wrong not in str(raised.value)
    assert sink.ledger_entry(issue.id) is None
    assert server.requests() == []


def test_a_429_retries_after_retry_after_and_the_batch_waits(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(concurrency=1)
    server.control(fail_next=[{"status": 429, "retry_after": 7, "method": "POST"}])
    first, second = alley("t3_a"), alley("t3_b")
    outcomes = sink.write([first, second])
    assert [type(o) for o in outcomes] == [Retry, Retry]
    assert [o.delay for o in outcomes] == [7.0, 7.0]  # type: ignore[union-attr]
    assert "429" in outcomes[0].reason  # type: ignore[union-attr]
    assert len(posts(server)) == 1  # the second was not tried
    assert sink.write([first, second]) == [WRITTEN, WRITTEN]
    assert len(server.requests()) == 2


def test_a_500_retries_that_issue_and_the_rest_are_tried(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(concurrency=1)  # one at a time, so the 500 meets the first issue
    server.control(fail_next=[{"status": 500, "method": "POST"}])
    first, second = alley("t3_a"), alley("t3_b")
    outcomes = sink.write([first, second])
    assert isinstance(outcomes[0], Retry)
    assert outcomes[1] == WRITTEN
    assert sink.write([first]) == [WRITTEN]
    assert len(server.requests()) == 2


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503},
        {"status": 503, "body": "html"},
        {"status": 502, "body": "empty"},
        {"status": 200, "body": "html"},
        {"status": 200, "body": "empty"},
    ],
    ids=["503", "503-html", "502-empty", "200-html", "200-empty"],
)
def test_an_unclear_answer_retries_and_the_next_try_files_once(
    server: Open311Server, sink: Open311Sink, failure: dict[str, Any]
) -> None:
    server.control(fail_next=[{**failure, "method": "POST"}])
    issue = alley()
    (outcome,) = sink.write([issue])
    assert isinstance(outcome, Retry)
    assert str(failure["status"]) in outcome.reason
    assert sink.ledger_entry(issue.id).state == POSTING  # type: ignore[union-attr]
    assert sink.write([issue]) == [WRITTEN]  # looked up (not there), then posted
    assert len(server.requests()) == 1
    lookups = [r for r in server.received() if r["path"] == "/requests.json"]
    assert [r["method"] for r in lookups] == ["POST", "GET", "POST"]
    assert lookups[1]["query"]["service_code"] == ALLEY


def test_a_503_retry_after_is_the_delay(server: Open311Server, sink: Open311Sink) -> None:
    server.control(fail_next=[{"status": 503, "retry_after": 3, "method": "POST"}])
    (outcome,) = sink.write([alley()])
    assert outcome == Retry(outcome.reason, 3.0)  # type: ignore[union-attr]


def test_an_error_list_in_a_200_rejects(server: Open311Server, sink: Open311Sink) -> None:
    server.control(fail_next=[{"status": 200, "method": "POST"}])
    issue = alley()
    (outcome,) = sink.write([issue])
    assert isinstance(outcome, Rejected)
    assert "error list in a 2xx answer" in outcome.reason
    assert sink.ledger_entry(issue.id) is None


def test_a_timeout_retries_and_the_request_it_filed_is_found(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(timeout_s=0.5)
    server.control(delay_s=1.5)
    issue = alley()
    (outcome,) = sink.write([issue])
    assert isinstance(outcome, Retry)
    assert "timed out" in outcome.reason
    server.reset()
    deadline = time.monotonic() + 10
    while not server.requests() and time.monotonic() < deadline:
        time.sleep(0.05)  # the server handles the request after its delay, as a real one would
    (record,) = server.requests()
    assert sink.write([issue]) == [WRITTEN]  # found by the lookup: not posted again
    assert len(posts(server)) == 1
    assert_filed(sink, issue, record["request"]["service_request_id"])


def test_a_realtime_answer_without_an_id_is_looked_up(
    server: Open311Server, sink: Open311Sink
) -> None:
    """The sink discovered a realtime service; the server now answers it as a blackbox."""
    server.control(service_types={ALLEY: "blackbox"})
    issue = alley()
    assert sink.write([issue]) == [WRITTEN]
    (record,) = server.requests()
    assert_filed(sink, issue, record["request"]["service_request_id"])


def test_a_realtime_answer_without_an_id_that_cannot_be_found_rejects(
    server: Open311Server, sink: Open311Sink
) -> None:
    server.control(service_types={ALLEY: "blackbox"}, max_rows=0)
    issue = alley()
    (outcome,) = sink.write([issue])
    assert isinstance(outcome, Rejected)
    assert "neither service_request_id nor token" in outcome.reason
    # A replayed dead letter looks it up before posting again.
    assert sink.ledger_entry(issue.id).state == POSTING  # type: ignore[union-attr]
    server.reset()
    assert sink.write([issue]) == [WRITTEN]
    assert len(posts(server)) == 1


# -------------------------------------------------------------- crash between POST and ledger

CRASHING_WRITER = """
import os, sys
from overheard.model import Issue
from overheard.sinks.open311 import Open311Sink

url, ledger_url, issue_path, when = sys.argv[1:5]
issue = Issue.from_bytes(open(issue_path, "rb").read())
sink = Open311Sink(url, os.environ["OPEN311_TEST_KEY"], None, ledger_url, 10)
sink.open()
post = sink._post

def crashing_post(form):
    if when == "before":
        os._exit(17)
    post(form)
    os._exit(17)  # the server filed it; the ledger never hears of it

sink._post = crashing_post
sink.write([issue])
os._exit(3)
"""


def run_crashing(source: str, tmp_path: Path, *args: str) -> None:
    """Run a writer script in a child process that must stop itself (exit 17) mid-way."""
    script = tmp_path / "crashing.py"
    script.write_text(source)
    env = {
        **os.environ,
        "OPEN311_TEST_KEY": KEY,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    done = subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 17, done.stderr.decode()


def crash_while_filing(server: Open311Server, ledger_url: str, tmp_path: Path, when: str) -> Issue:
    issue = alley()
    issue_path = tmp_path / "issue.json"
    issue_path.write_bytes(issue.to_bytes())
    run_crashing(CRASHING_WRITER, tmp_path, server.url, ledger_url, str(issue_path), when)
    return issue


def test_a_crash_after_the_post_files_exactly_once(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str, tmp_path: Path
) -> None:
    issue = crash_while_filing(server, ledger_url, tmp_path, "after")
    (record,) = server.requests()
    sink = make_sink()
    assert sink.ledger_entry(issue.id).state == POSTING  # type: ignore[union-attr]
    assert sink.write([issue]) == [WRITTEN]
    assert len(server.requests()) == 1
    assert len(posts(server)) == 1
    assert_filed(sink, issue, record["request"]["service_request_id"])


def test_a_crash_before_the_post_files_it_on_the_next_try(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str, tmp_path: Path
) -> None:
    issue = crash_while_filing(server, ledger_url, tmp_path, "before")
    assert server.requests() == []
    sink = make_sink()
    assert sink.ledger_entry(issue.id).state == POSTING  # type: ignore[union-attr]
    assert sink.write([issue]) == [WRITTEN]
    (record,) = server.requests()
    entry = sink.ledger_entry(issue.id)
    assert entry is not None
    assert entry.service_request_id == record["request"]["service_request_id"]


# -------------------------------------------------------------- in the pipeline


def test_the_sink_stage_rides_out_a_flapping_server_and_files_once(
    server: Open311Server, sink: Open311Sink
) -> None:
    bus = MemoryBus(TOPICS)
    first, second = alley("t3_s1"), alley("t3_s2")
    producer = bus.producer()
    for issue in (first, second, first):
        producer.send(TOPICS.issues, issue.to_bytes())
    producer.flush()
    server.control(fail_next=[503, 503, {"status": 503, "body": "html"}, 502, 503])
    summary = Summary()
    stop = threading.Event()
    runner = StageRunner.on(
        bus, SinkStage(sink, "open311", FAST, stop), TOPICS.issues, FAST, stop, summary
    )
    assert runner.step(100, 0) == 3
    assert runner.consumer.lag() == 0
    assert bus.records(TOPICS.deadletters) == []
    assert summary.as_dict()["issues_written"] == {"open311": 3}
    requests = server.requests()
    assert len(requests) == 2
    descriptions = sorted(r["form"]["description"] for r in requests)
    assert [str(first.id) in d for d in descriptions].count(True) == 1
    assert [str(second.id) in d for d in descriptions].count(True) == 1
    assert server.switches()["fail_next"] == []  # every failure was met
    for issue in (first, second):
        assert sink.ledger_entry(issue.id).state == FILED  # type: ignore[union-attr]


def filed_once(server: Open311Server, issues: list[Issue]) -> dict[str, str]:
    """Each issue's service_request_id on the server; fails unless each was filed exactly once
    and nothing else was."""
    records = server.requests()
    by_issue: dict[str, list[str]] = {}
    for record in records:
        for issue in issues:
            if f"overheard issue {issue.id}" in record["form"]["description"]:
                by_issue.setdefault(str(issue.id), []).append(
                    record["request"]["service_request_id"]
                )
    assert len(records) == len(issues)
    assert {key: len(ids) for key, ids in by_issue.items()} == {str(i.id): 1 for i in issues}
    return {key: ids[0] for key, ids in by_issue.items()}


def test_the_sink_stage_rides_out_30_seconds_of_503_and_files_each_issue_once(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(concurrency=4)
    retry = RetrySettings(initial_s=0.5, max_s=4)
    bus = MemoryBus(TOPICS)
    issues = [alley(f"t3_out{n}") for n in range(12)]
    producer = bus.producer()
    for issue in [*issues, issues[3], issues[7]]:  # two redelivered within the batch
        producer.send(TOPICS.issues, issue.to_bytes())
    producer.flush()
    summary = Summary()
    stop = threading.Event()
    runner = StageRunner.on(
        bus, SinkStage(sink, "open311", retry, stop), TOPICS.issues, retry, stop, summary
    )
    server.control(fail_for_s=30, fail_status=503)
    assert runner.step(100, 0) == 14
    assert server.switches()["fail_left_s"] == 0  # the stage waited the outage out
    assert runner.consumer.lag() == 0
    assert bus.records(TOPICS.deadletters) == []
    assert summary.as_dict()["issues_written"] == {"open311": 14}
    answered = [r["status"] for r in server.received()]
    assert answered.count(503) >= 10  # it kept trying, with backoff, through the outage
    filed = filed_once(server, issues)
    for issue in issues:
        assert_filed(sink, issue, filed[str(issue.id)])


# -------------------------------------------------------------- concurrency


def test_a_batch_of_40_with_concurrency_8_files_40_requests_in_order(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(concurrency=8)
    server.clear()
    server.control(delay_s=0.2)  # so that requests overlap
    issues = [alley(f"t3_c{n}") for n in range(40)]
    unlocated = alley("t3_nowhere", located=False)
    batch = [*issues[:17], unlocated, *issues[17:]]
    outcomes = sink.write(batch)
    assert [type(o) for o in outcomes] == [type(WRITTEN)] * 17 + [Rejected] + [type(WRITTEN)] * 23
    assert "no location" in outcomes[17].reason  # type: ignore[union-attr]
    assert server.switches()["max_in_flight"] == 8
    assert len(posts(server)) == 40
    filed = filed_once(server, issues)
    assert len(set(filed.values())) == 40
    for issue in issues:
        assert_filed(sink, issue, filed[str(issue.id)])
    assert sink.ledger_entry(unlocated.id) is None
    assert sink.write(batch)[:3] == [WRITTEN] * 3  # redelivered: no request at all
    assert len(posts(server)) == 40


def test_the_same_issue_twice_in_a_batch_under_concurrency_posts_once(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(concurrency=8)
    server.control(delay_s=0.1)
    a, b, c = alley("t3_d1"), alley("t3_d2"), alley("t3_d3")
    assert sink.write([a, b, a, c, a, b, c, c]) == [WRITTEN] * 8
    assert len(posts(server)) == 3
    filed_once(server, [a, b, c])


def test_a_wait_under_concurrency_stops_the_requests_not_yet_started(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(concurrency=4)
    # The first POST answers 503 after 0.3 s, when all four are in flight; the three others
    # take 1 s, so no worker is free to start another issue before the 503 is known.
    slow = {"delay_s": 1.0, "method": "POST"}
    server.control(
        fail_next=[{"status": 503, "retry_after": 9, "delay_s": 0.3, "method": "POST"}, *[slow] * 3]
    )
    issues = [alley(f"t3_w{n}") for n in range(12)]
    outcomes = sink.write(issues)
    assert len(posts(server)) == 4
    assert [type(o) for o in outcomes[4:]] == [Retry] * 8
    assert all("not tried" in o.reason and o.delay == 9.0 for o in outcomes[4:])  # type: ignore[union-attr]
    first = outcomes[:4]
    assert sorted(type(o).__name__ for o in first) == ["Retry", "Written", "Written", "Written"]
    assert len(server.requests()) == 3
    assert sink.write(issues) == [WRITTEN] * 12
    filed_once(server, issues)


def test_a_setup_error_under_concurrency_stops_the_batch(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(concurrency=4)
    server.control(fail_next=[{"status": 403, "method": "POST"}] * 12)
    with pytest.raises(Open311SetupError, match="403"):
        sink.write([alley(f"t3_x{n}") for n in range(12)])
    assert 1 <= len(posts(server)) <= 4
    assert server.requests() == []


def test_concurrency_must_be_at_least_one(ledger_url: str) -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        Open311Sink("http://127.0.0.1:1/", KEY, None, ledger_url, concurrency=0)
    with pytest.raises(ValueError, match="concurrency"):
        Open311Settings(concurrency=0)
    assert Open311Settings().concurrency == 4


# -------------------------------------------------------------- attributes, jurisdiction


def test_the_issue_id_attribute_and_the_jurisdiction(tmp_path: Path, ledger_url: str) -> None:
    definition = tmp_path / "alley.json"
    definition.write_text(
        json.dumps(
            {
                "service_code": ALLEY,
                "attributes": [
                    {"code": "ISSUE_ID", "datatype": "string", "required": True, "order": 1},
                    {"code": "NOTE", "datatype": "text", "required": False, "order": 2},
                    {"code": "WARNING", "datatype": "string", "variable": False, "order": 3},
                ],
            }
        )
    )
    with Open311Server.start(
        services="baltimore",
        api_key=KEY,
        definitions=[f"{ALLEY}={definition}"],
        jurisdiction="baltimorecity.gov",
    ) as other:
        wrong = Open311Sink(other.url, KEY, "elsewhere.gov", ledger_url, 10)
        with pytest.raises(Open311SetupError, match="jurisdiction_id 'elsewhere.gov' not found"):
            wrong.open()
        wrong.close()
        sink = Open311Sink(other.url, KEY, "baltimorecity.gov", ledger_url, 10)
        sink.open()
        try:
            issue = alley()
            assert sink.write([issue]) == [WRITTEN]
        finally:
            sink.close()
        (record,) = other.requests()
    form = record["form"]
    assert form["jurisdiction_id"] == "baltimorecity.gov"
    assert form["attribute[ISSUE_ID]"] == str(issue.id)
    assert record["attributes"] == {"ISSUE_ID": str(issue.id)}


@pytest.mark.parametrize(
    ("code", "datatype", "filled"),
    [
        ("ISSUE_ID", "string", True),
        ("external_id", "text", True),
        ("OVERHEARD-ISSUE-ID", "string", True),
        ("EXTERNAL_ID", "number", False),
        ("ISSUE_IDENTITY", "string", False),
        ("LOCATION_TYPE", "singlevaluelist", False),
    ],
)
def test_which_attributes_take_the_issue_id(code: str, datatype: str, filled: bool) -> None:
    assert is_issue_id_attribute({"code": code, "datatype": datatype}) is filled


# -------------------------------------------------------------- secrets, settings


def test_the_api_key_never_reaches_a_log_or_a_repr(
    server: Open311Server, make_sink: SinkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = make_sink()
    server.control(fail_next=[{"status": 503, "method": "POST"}, {"status": 400, "method": "POST"}])
    sink.write([alley("t3_k1")])
    sink.write([alley("t3_k1")])
    sink.write([alley("t3_k2")])
    sink.write([alley("t3_k2")])
    wrong = "wrong-key-9f8e7d6c"
    with pytest.raises(Open311SetupError) as raised:
        make_sink(api_key=wrong).write([alley("t3_k3")])
    assert "HTTP Request: POST" in caplog.text  # the logs were captured, at DEBUG
    for secret in (KEY, wrong):
        assert secret not in caplog.text
        assert secret not in repr(sink) and secret not in str(sink)
        assert secret not in str(raised.value)


def test_from_settings(server: Open311Server, ledger_url: str) -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        from_settings(Settings(open311=Open311Settings()))
    with pytest.raises(ConfigError, match="OVERHEARD_OPEN311__API_KEY"):
        from_settings(Settings(open311=Open311Settings(endpoint=server.url)))
    settings = Settings(
        open311=Open311Settings(
            endpoint=server.url, api_key=KEY, ledger_url=ledger_url, timeout_s=5, concurrency=2
        )
    )
    sink = from_settings(settings)
    assert sink.name == "open311"
    assert repr(sink).endswith("concurrency=2)")
    sink.open()
    try:
        assert ALLEY in sink.services
        assert sink.write([alley()]) == [WRITTEN]
    finally:
        sink.close()


def test_a_server_that_is_down_at_open_is_transient(ledger_url: str) -> None:
    sink = Open311Sink("http://127.0.0.1:1/open311/v2", KEY, None, ledger_url, 2)
    try:
        with pytest.raises(TransientError, match="services.json failed: ConnectError"):
            sink.open()
    finally:
        sink.close()


def test_a_locked_ledger_is_transient_and_nothing_is_posted(
    server: Open311Server, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.db"
    sink = Open311Sink(server.url, KEY, None, f"sqlite:///{path}?timeout=0.2", 10)
    sink.open()
    holder = sqlite3.connect(str(path), isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(TransientError, match="open311 ledger"):
            sink.write([alley()])
        assert posts(server) == []  # no intent recorded, so no POST
        holder.execute("ROLLBACK")
        assert sink.write([alley()]) == [WRITTEN]
    finally:
        holder.close()
        sink.close()


@pytest.mark.parametrize(
    ("header", "delay"),
    [("7", 7.0), ("0.5", 0.5), ("soon", None), (None, None)],
)
def test_retry_after_seconds(header: str | None, delay: float | None) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    assert _retry_after(httpx.Response(429, headers=headers)) == delay


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    delay = _retry_after(httpx.Response(503, headers={"Retry-After": later}))
    assert delay is not None and 100 < delay <= 120


@pytest.mark.parametrize("url", ["not a url", "ftp://example.org/open311/"])
def test_a_bad_endpoint_is_a_config_error(url: str, ledger_url: str) -> None:
    with pytest.raises(ConfigError):
        Open311Sink(url, KEY, None, ledger_url)


@pytest.mark.postgres
def test_the_ledger_in_postgresql(server: Open311Server, postgres_schema_url: str) -> None:
    sink = Open311Sink(server.url, KEY, None, postgres_schema_url, 10)
    sink.open()
    try:
        server.control(tokens=True)
        issue = alley()
        assert sink.write([issue, issue]) == [WRITTEN, WRITTEN]
        assert sink.ledger_entry(issue.id).state == TOKEN  # type: ignore[union-attr]
        assert sink.resolve_tokens() == 1
        assert sink.ledger_entry(issue.id).state == FILED  # type: ignore[union-attr]
        assert len(server.requests()) == 1
    finally:
        sink.close()


# -------------------------------------------------------------- clusters

CLUSTERS = ClustersProfile(distance_m=60, window_hours=168)


def moved(issue: Issue, metres_north: float, precision: Precision | None = None) -> Issue:
    """The same report, `metres_north` further north (and at another precision)."""
    assert issue.location is not None
    location = issue.location.model_copy(
        update={
            "lat": issue.location.lat + metres_north / 111_195.0,
            "precision": precision or issue.location.precision,
        }
    )
    return issue.model_copy(update={"location": location})


def notes(server: Open311Server) -> list[dict[str, Any]]:
    return [note for record in server.requests() for note in record.get("updates", [])]


def note_posts(server: Open311Server) -> list[dict[str, Any]]:
    """Every POST of a note the server received, whatever it answered."""
    return [r for r in posts(server) if r["path"] == "/servicerequestupdates.json"]


def owed_notes(ledger_url: str) -> list[str]:
    """The issue ids whose notes the (SQLite) ledger still owes."""
    with sqlite3.connect(ledger_url.removeprefix("sqlite:///")) as db:
        rows = db.execute("SELECT issue_id FROM open311_notes ORDER BY owed_at").fetchall()
    return [str(uuid.UUID(row[0])) for row in rows]


def posted_later(issue: Issue, minutes: int) -> Issue:
    """The same report, posted `minutes` later."""
    post = issue.post.model_copy(
        update={"created_at": issue.post.created_at + timedelta(minutes=minutes)}
    )
    return issue.model_copy(update={"post": post})


def test_two_nearby_reports_make_one_request_and_the_later_is_attached_in_the_ledger(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(clusters=CLUSTERS)
    first, second = alley("t3_c1"), moved(alley("t3_c2"), 40)
    far = moved(alley("t3_c3"), 500)
    street = moved(alley("t3_c4"), 10, Precision.STREET)  # a centroid: never grouped
    assert sink.write([first, second, far, street]) == [WRITTEN] * 4
    filed = {
        r["request"]["service_request_id"]: r["form"]["description"] for r in server.requests()
    }
    assert len(filed) == 3
    assert [str(second.id) in d for d in filed.values()] == [False] * 3
    anchor, later = sink.ledger_entry(first.id), sink.ledger_entry(second.id)
    assert anchor is not None and later is not None
    assert (anchor.cluster_id, later.cluster_id) == (first.id, first.id)
    assert (later.state, later.service_request_id) == (FILED, anchor.service_request_id)
    assert later.update_id is None
    assert notes(server) == []  # updates are off by default
    assert [r["path"] for r in posts(server)] == ["/requests.json"] * 3


def test_with_updates_a_later_report_is_a_note_on_the_request(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(clusters=CLUSTERS, updates=True)
    first, second = alley("t3_n1"), moved(alley("t3_n2"), 30)
    assert sink.write([first]) == [WRITTEN]
    assert sink.write([second]) == [WRITTEN]
    (record,) = server.requests()
    (note,) = record["updates"]
    assert note["client_update_id"] == str(second.id)
    assert note["service_request_id"] == record["request"]["service_request_id"]
    assert f"overheard issue {second.id}" in note["description"]
    assert note["status"] == "open"
    entry = sink.ledger_entry(second.id)
    assert entry is not None
    assert (entry.state, entry.update_id) == (FILED, note["update_id"])
    assert entry.service_request_id == record["request"]["service_request_id"]


def test_a_restart_and_redeliveries_file_no_second_request_and_no_second_note(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    first, second, third = alley("t3_r1"), moved(alley("t3_r2"), 20), moved(alley("t3_r3"), -25)
    assert make_sink(clusters=CLUSTERS, updates=True).write([first, second]) == [WRITTEN] * 2
    again = make_sink(clusters=CLUSTERS, updates=True)  # a new process: state from the ledger
    assert again.write([second, first, second]) == [WRITTEN] * 3
    assert again.write([third]) == [WRITTEN]
    (record,) = server.requests()
    assert [n["client_update_id"] for n in record["updates"]] == [str(second.id), str(third.id)]
    entry = again.ledger_entry(third.id)
    assert entry is not None and entry.cluster_id == first.id
    assert len(posts(server)) == 3  # one request, two notes


def test_a_note_whose_answer_was_lost_is_posted_again_once(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str
) -> None:
    sink = make_sink(clusters=CLUSTERS, updates=True, timeout_s=0.5)
    first, second = alley("t3_l1"), alley("t3_l2")
    assert sink.write([first]) == [WRITTEN]
    server.control(delay_s=1.5)  # the server makes the note after the sink gave up on it
    (outcome,) = sink.write([second])
    assert isinstance(outcome, Retry) and "timed out" in outcome.reason
    entry = sink.ledger_entry(second.id)
    assert entry is not None and (entry.state, entry.update_id) == (FILED, None)
    assert owed_notes(ledger_url) == [str(second.id)]
    server.reset()
    deadline = time.monotonic() + 10
    while not notes(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.write([second]) == [WRITTEN]  # the same update_id: the server knows it
    (note,) = notes(server)
    assert len([r for r in posts(server) if r["path"] == "/servicerequestupdates.json"]) == 2
    entry = sink.ledger_entry(second.id)
    assert entry is not None and entry.update_id == note["update_id"]
    assert owed_notes(ledger_url) == []


def test_a_later_note_waits_for_the_notes_its_cluster_still_owes(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str
) -> None:
    sink = make_sink(clusters=CLUSTERS, updates=True)
    first, second, third = alley("t3_o1"), alley("t3_o2"), posted_later(alley("t3_o3"), 5)
    assert sink.write([first]) == [WRITTEN]
    server.control(fail_next=[{"status": 500, "method": "POST"}])
    (outcome,) = sink.write([second])
    assert isinstance(outcome, Retry) and "500" in outcome.reason
    # The next write's round fails on the second's note again; the third's attaching
    # posts the second's note first, then its own.
    server.control(fail_next=[{"status": 500, "method": "POST"}])
    assert sink.write([third]) == [WRITTEN]
    assert [n["client_update_id"] for n in notes(server)] == [str(second.id), str(third.id)]
    assert sink.write([second, third]) == [WRITTEN, WRITTEN]  # redelivered: nothing owed
    assert len(note_posts(server)) == 4 and owed_notes(ledger_url) == []


def test_a_rejected_first_report_hands_its_cluster_to_the_next(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(clusters=CLUSTERS)
    first, second, third = alley("t3_x1"), alley("t3_x2"), moved(alley("t3_x3"), 15)
    server.control(fail_next=[{"status": 400, "method": "POST"}])
    outcomes = sink.write([first, second, third])
    assert isinstance(outcomes[0], Rejected)
    assert outcomes[1:] == [WRITTEN, WRITTEN]
    (record,) = server.requests()
    assert f"overheard issue {second.id}" in record["form"]["description"]
    entry = sink.ledger_entry(third.id)
    assert entry is not None
    assert (entry.cluster_id, entry.service_request_id) == (
        second.id,
        record["request"]["service_request_id"],
    )
    assert sink.ledger_entry(first.id) is None


def test_later_reports_wait_while_their_first_waits(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    sink = make_sink(clusters=CLUSTERS)
    first, second = alley("t3_w1"), alley("t3_w2")
    server.control(fail_next=[{"status": 503, "method": "POST"}])
    outcomes = sink.write([first, second])
    assert all(isinstance(o, Retry) for o in outcomes)
    assert server.requests() == []
    assert sink.write([first, second]) == [WRITTEN, WRITTEN]
    assert len(server.requests()) == 1


def test_clusters_through_the_sink_stage_with_a_token_and_a_later_report(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    """A batch service: the later report takes its first's token, and both resolve to the
    same request id."""
    server.control(tokens=True)
    sink = make_sink(clusters=CLUSTERS, updates=True)
    first, second = alley("t3_t1"), alley("t3_t2")
    bus = MemoryBus(TOPICS)
    bus.ensure_topics()
    producer = bus.producer()
    for issue in (first, second):
        producer.send(TOPICS.issues, issue.to_bytes(), key=b"baltimore:dirty alley")
    producer.flush()
    stop = threading.Event()
    runner = StageRunner.on(
        bus, SinkStage(sink, "g", FAST, stop), TOPICS.issues, FAST, stop, Summary()
    )
    assert runner.step(10, 0.0) == 2
    entries = [sink.ledger_entry(i.id) for i in (first, second)]
    assert [e.state for e in entries if e is not None] == [TOKEN, TOKEN]
    assert sink.resolve_tokens() == 2
    ids = {e.service_request_id for i in (first, second) if (e := sink.ledger_entry(i.id))}
    assert len(ids) == 1 and None not in ids
    (record,) = server.requests()
    assert [n["client_update_id"] for n in record["updates"]] == [str(second.id)]


def token_cluster(server: Open311Server, sink: Open311Sink) -> tuple[Issue, Issue, Issue]:
    """A batch service: a first report filed with a token the server cannot resolve yet,
    and two later reports attached to it (posted 10 and 20 minutes after it; the issue
    ids sort the other way round, so the notes' order can only come from the post times)."""
    server.control(tokens=True, token_pending=1)
    first = alley("t3_z1")
    second, third = posted_later(alley("t3_z2"), 10), posted_later(alley("t3_z3"), 20)
    assert str(third.id) < str(second.id)
    assert sink.write([first, second, third]) == [WRITTEN] * 3
    entries = [sink.ledger_entry(issue.id) for issue in (first, second, third)]
    assert [(e.state, e.cluster_id, e.update_id) for e in entries if e] == [
        (TOKEN, first.id, None)
    ] * 3
    assert len({e.token for e in entries if e}) == 1
    return first, second, third


def test_notes_of_reports_attached_to_a_token_are_posted_once_it_resolves(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str
) -> None:
    sink = make_sink(clusters=CLUSTERS, updates=True)
    first, second, third = token_cluster(server, sink)
    assert note_posts(server) == []  # no id yet: nothing to post a note on
    assert sink.resolve_tokens() == 0  # the server has no id for the token yet
    assert note_posts(server) == []
    assert owed_notes(ledger_url) == [str(second.id), str(third.id)]
    assert sink.resolve_tokens() == 3  # the first report and both attached to it
    (record,) = server.requests()
    request_id = record["request"]["service_request_id"]
    assert [n["client_update_id"] for n in record["updates"]] == [str(second.id), str(third.id)]
    for note, issue in zip(record["updates"], (second, third), strict=True):
        assert note["service_request_id"] == request_id
        assert note["description"] == describe_issue(issue)
        assert note["updated_datetime"] == issue.post.created_at.isoformat()
        entry = sink.ledger_entry(issue.id)
        assert entry is not None
        assert (entry.state, entry.service_request_id, entry.update_id) == (
            FILED,
            request_id,
            note["update_id"],
        )
    assert_filed(sink, first, request_id)
    assert owed_notes(ledger_url) == []
    # Resolving again, a restart, and redeliveries post nothing more.
    assert sink.resolve_tokens() == 0
    again = make_sink(clusters=CLUSTERS, updates=True)
    assert again.write([third, second, first]) == [WRITTEN] * 3
    assert len(note_posts(server)) == 2
    assert len(posts(server)) == 3  # one request, two notes
    assert len(server.requests()) == 1


def test_a_note_that_fails_after_its_token_resolved_is_posted_on_the_next_resolve(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str
) -> None:
    sink = make_sink(clusters=CLUSTERS, updates=True)
    first, second, third = token_cluster(server, sink)
    assert sink.resolve_tokens() == 0
    server.control(fail_next=[{"status": 503, "method": "POST"}])
    with pytest.raises(TransientError, match="503"):
        sink.resolve_tokens()  # the token resolves; the first note finds the server down
    assert sink.ledger_entry(first.id).state == FILED  # type: ignore[union-attr]
    assert owed_notes(ledger_url) == [str(second.id), str(third.id)]
    server.control(fail_next=[{"status": 500, "method": "POST"}])
    assert sink.resolve_tokens() == 0  # a 500 for the first note: the second waits its turn
    assert notes(server) == []
    assert owed_notes(ledger_url) == [str(second.id), str(third.id)]
    assert sink.resolve_tokens() == 0
    assert [n["client_update_id"] for n in notes(server)] == [str(second.id), str(third.id)]
    assert [r["status"] for r in note_posts(server)] == [503, 500, 200, 200]
    assert owed_notes(ledger_url) == []
    for issue, note in zip((second, third), notes(server), strict=True):
        assert sink.ledger_entry(issue.id).update_id == note["update_id"]  # type: ignore[union-attr]


def test_a_write_posts_the_notes_a_server_outage_left_owed(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str
) -> None:
    sink = make_sink(clusters=CLUSTERS, updates=True)
    first, second, _ = token_cluster(server, sink)
    assert sink.resolve_tokens() == 0
    server.control(fail_next=[{"status": 503, "method": "POST"}])
    far = moved(alley("t3_z9"), 800)
    assert sink.write([far]) == [WRITTEN]  # its resolve round waits; the filing goes on
    assert notes(server) == [] and len(owed_notes(ledger_url)) == 2
    assert sink.write([far]) == [WRITTEN]  # the next write's round posts them
    assert [n["client_update_id"] for n in notes(server)][:1] == [str(second.id)]
    assert len(notes(server)) == 2 and owed_notes(ledger_url) == []
    assert len(server.requests()) == 2
    assert_filed(sink, first, server.requests()[0]["request"]["service_request_id"])


def test_a_refused_note_of_a_resolved_token_stays_in_the_ledger_only(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str
) -> None:
    sink = make_sink(clusters=CLUSTERS, updates=True)
    _, second, third = token_cluster(server, sink)
    assert sink.resolve_tokens() == 0
    server.control(fail_next=[{"status": 400, "method": "POST"}])
    assert sink.resolve_tokens() == 3
    assert [n["client_update_id"] for n in notes(server)] == [str(third.id)]
    entry = sink.ledger_entry(second.id)
    assert entry is not None and (entry.state, entry.update_id) == (FILED, None)
    assert owed_notes(ledger_url) == []
    assert sink.resolve_tokens() == 0
    assert len(note_posts(server)) == 2


def test_forgetting_a_post_drops_the_note_still_owed_for_it(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str
) -> None:
    sink = make_sink(clusters=CLUSTERS, updates=True)
    _, second, third = token_cluster(server, sink)
    assert sink.forget(post_id=second.post.id) == 2  # the subject, and its owed note
    assert sink.forget(post_id=second.post.id) == 0
    assert owed_notes(ledger_url) == [str(third.id)]
    with sqlite3.connect(ledger_url.removeprefix("sqlite:///")) as db:
        held = repr(db.execute("SELECT * FROM open311_notes").fetchall())
    assert second.post.id not in held and str(second.post.url) not in held
    assert sink.resolve_tokens() == 0
    assert sink.resolve_tokens() == 3
    assert [n["client_update_id"] for n in notes(server)] == [str(third.id)]
    assert sink.write([second]) == [WRITTEN]  # redelivered: still attached, no note
    assert len(note_posts(server)) == 1


def test_retention_drops_the_notes_owed_for_older_posts(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str
) -> None:
    sink = make_sink(clusters=CLUSTERS, updates=True)
    assert isinstance(sink, Retaining)  # `overheard retention apply` reaches it
    _, second, third = token_cluster(server, sink)
    between = second.post.created_at + timedelta(minutes=5)  # third is 10 minutes later
    assert sink.drop_text_before(between) == 1
    assert sink.drop_text_before(between) == 0
    assert owed_notes(ledger_url) == [str(third.id)]
    assert sink.resolve_tokens() == 0
    assert sink.resolve_tokens() == 3
    assert [n["client_update_id"] for n in notes(server)] == [str(third.id)]
    entry = sink.ledger_entry(second.id)
    assert entry is not None and entry.state == FILED  # still attached, without its note


def test_without_updates_nothing_is_owed_and_no_note_is_posted(
    server: Open311Server, make_sink: SinkFactory, ledger_url: str
) -> None:
    sink = make_sink(clusters=CLUSTERS)
    token_cluster(server, sink)
    assert owed_notes(ledger_url) == []
    assert sink.resolve_tokens() == 0
    assert sink.resolve_tokens() == 3
    assert note_posts(server) == []


CRASHING_NOTE_WRITER = """
import os, sys
from overheard.model import Issue
from overheard.profile import ClustersProfile
from overheard.sinks.open311 import Open311Sink

url, ledger_url, first_path, second_path, when = sys.argv[1:6]
first, second = (Issue.from_bytes(open(p, "rb").read()) for p in (first_path, second_path))
clusters = ClustersProfile(distance_m=60, window_hours=168)
sink = Open311Sink(
    url, os.environ["OPEN311_TEST_KEY"], None, ledger_url, 10, clusters=clusters, updates=True
)
sink.open()
assert [type(o).__name__ for o in sink.write([first])] == ["Written"]
send = sink._send_note

def crashing_send(form):
    if when == "before":
        os._exit(17)
    send(form)
    os._exit(17)  # the server made the note; the ledger never hears of it

sink._send_note = crashing_send
sink.write([second])
os._exit(3)
"""


@pytest.mark.parametrize(("when", "posted"), [("before", 1), ("after", 2)])
def test_a_crash_around_a_note_posts_it_on_restart_and_the_server_keeps_one(
    server: Open311Server,
    make_sink: SinkFactory,
    ledger_url: str,
    tmp_path: Path,
    when: str,
    posted: int,
) -> None:
    first, second = alley("t3_y1"), moved(alley("t3_y2"), 20)
    paths = [tmp_path / "first.json", tmp_path / "second.json"]
    for path, issue in zip(paths, (first, second), strict=True):
        path.write_bytes(issue.to_bytes())
    run_crashing(CRASHING_NOTE_WRITER, tmp_path, server.url, ledger_url, *map(str, paths), when)
    assert owed_notes(ledger_url) == [str(second.id)]
    assert len(notes(server)) == posted - 1
    sink = make_sink(clusters=CLUSTERS, updates=True)  # open posts the note still owed
    (note,) = notes(server)
    assert note["client_update_id"] == str(second.id)
    assert len(note_posts(server)) == posted
    assert owed_notes(ledger_url) == []
    assert sink.write([second, first]) == [WRITTEN, WRITTEN]
    assert len(note_posts(server)) == posted and len(server.requests()) == 1
    entry = sink.ledger_entry(second.id)
    assert entry is not None and entry.update_id == note["update_id"]


def test_a_ledger_made_before_clusters_gets_its_columns(
    server: Open311Server, make_sink: SinkFactory, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.db"  # the ledger_url fixture's file
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE open311_ledger (issue_id CHAR(32) NOT NULL PRIMARY KEY, "
            "service_code VARCHAR NOT NULL, state VARCHAR NOT NULL, service_request_id VARCHAR, "
            "token VARCHAR, intent_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, "
            "CONSTRAINT ck_open311_ledger_state_known "
            "CHECK (state IN ('posting', 'filed', 'token', 'filed_blackbox')))"
        )
    old = alley("t3_old")
    assert make_sink().write([old]) == [WRITTEN]  # without clusters: the old path
    sink = make_sink(clusters=CLUSTERS)
    sink.close()
    sink = make_sink(clusters=CLUSTERS)  # a second open adds nothing
    first, second = moved(alley("t3_new1"), 300), moved(alley("t3_new2"), 310)
    assert sink.write([old, first, second]) == [WRITTEN] * 3
    assert len(server.requests()) == 2
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(open311_ledger)")}
        indexes = {row[1] for row in db.execute("PRAGMA index_list(open311_ledger)")}
    assert {"cluster_id", "cluster_key", "lat", "lon", "posted_at", "update_id"} <= columns
    assert "ix_open311_ledger_cluster_key_posted_at" in indexes
    assert owed_notes(f"sqlite:///{path}") == []  # the notes table was added too


def test_from_settings_clusters_with_the_profile_unless_told_not_to(
    server: Open311Server, ledger_url: str, tmp_path: Path
) -> None:
    for cluster, requests in ((True, 1), (False, 2)):
        server.clear()
        settings = Settings(
            open311=Open311Settings(
                endpoint=server.url,
                api_key=KEY,
                ledger_url=f"sqlite:///{tmp_path}/ledger-{cluster}.db",
                cluster=cluster,
            )
        )
        sink = from_settings(settings)
        sink.open()
        try:
            assert sink.write([alley("t3_s1"), alley("t3_s2")]) == [WRITTEN, WRITTEN]
        finally:
            sink.close()
        assert len(server.requests()) == requests


@pytest.mark.postgres
def test_clusters_rebuilt_from_a_postgresql_ledger(
    server: Open311Server, postgres_schema_url: str
) -> None:
    first, second = alley("t3_p1"), moved(alley("t3_p2"), 30)
    for batch in ([first], [second, first]):
        sink = Open311Sink(server.url, KEY, None, postgres_schema_url, 10, clusters=CLUSTERS)
        sink.open()
        try:
            assert sink.write(batch) == [WRITTEN] * len(batch)
        finally:
            sink.close()
    assert len(server.requests()) == 1
    entry = Open311Sink(server.url, KEY, None, postgres_schema_url, 10).ledger_entry(second.id)
    assert entry is not None and entry.cluster_id == first.id


@pytest.mark.postgres
def test_notes_owed_on_a_token_in_a_postgresql_ledger(
    server: Open311Server, postgres_schema_url: str
) -> None:
    sink = Open311Sink(
        server.url, KEY, None, postgres_schema_url, 10, clusters=CLUSTERS, updates=True
    )
    sink.open()
    try:
        first, second, third = token_cluster(server, sink)
        assert sink.forget(post_id=third.post.id) == 2  # the subject, and its owed note
        assert sink.resolve_tokens() == 0
        assert sink.resolve_tokens() == 3
        assert sink.resolve_tokens() == 0
    finally:
        sink.close()
    (record,) = server.requests()
    assert [n["client_update_id"] for n in record["updates"]] == [str(second.id)]
    assert len(note_posts(server)) == 1
    entry = sink.ledger_entry(second.id)
    assert entry is not None and entry.update_id == record["updates"][0]["update_id"]
    assert entry.service_request_id == record["request"]["service_request_id"]


def test_a_sink_that_takes_over_a_category_learns_its_clusters_from_the_ledger(
    server: Open311Server, make_sink: SinkFactory
) -> None:
    """Two processes share the ledger; a rebalance gives the alleys to the second, which
    was open before the first filed its report."""
    before, after = make_sink(clusters=CLUSTERS), make_sink(clusters=CLUSTERS)
    first, second = alley("t3_b1"), moved(alley("t3_b2"), 25)
    assert before.write([first]) == [WRITTEN]
    assert after.write([second]) == [WRITTEN]
    assert len(server.requests()) == 1
    entry = after.ledger_entry(second.id)
    assert entry is not None and entry.cluster_id == first.id
