"""The webhook sink against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from overheard.errors import ConfigError
from overheard.model import Issue
from overheard.settings import AuditSettings, Settings, WebhookSettings
from overheard.sinks.base import WRITTEN, Rejected, Retry, Sink
from overheard.sinks.registry import create_sink
from overheard.sinks.webhook import (
    WebhookSetupError,
    WebhookSink,
    from_settings,
    retry_after,
    shown_url,
    sign,
)
from tests.factories import make_issue
from tests.sinks.webhook_receiver import Answer, Receiver, Request, running_receiver

SECRET = "whsec-7f3a9c21d4e8b6"


def make_issues(count: int) -> list[Issue]:
    return [make_issue(f"t3_wp{n:03d}") for n in range(count)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver(SECRET) as running:
        yield running


@pytest.fixture
def sink(receiver: Receiver) -> Iterator[WebhookSink]:
    opened = WebhookSink(receiver.url, SECRET, timeout_s=2)
    opened.open()
    yield opened
    opened.close()


def for_issue(issue: Issue, answer: Answer) -> Any:
    """A script answering `answer` to requests about `issue`, the receiver's rules otherwise."""
    return lambda request: answer if request.headers["idempotency-key"] == str(issue.id) else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- settings ----------------------------------------------------------------------------------


def test_is_made_from_the_webhook_settings(receiver: Receiver, tmp_path: Path) -> None:
    settings = Settings(
        webhook=WebhookSettings(url=receiver.url, secret=SecretStr(SECRET), timeout_s=3),
        sinks=["webhook"],
        audit=AuditSettings(url=f"sqlite:///{tmp_path / 'audit.db'}"),
    )
    made = create_sink("webhook", settings)
    assert isinstance(made.inner, WebhookSink) and isinstance(made, Sink)
    assert made.name == "webhook"
    made.open()
    assert made.write([make_issue()]) == [WRITTEN]
    made.close()


@pytest.mark.parametrize(
    ("webhook", "message"),
    [
        (WebhookSettings(secret=SecretStr(SECRET)), "set \\[webhook\\] url"),
        (WebhookSettings(url="https://hooks.example.org/x"), "OVERHEARD_WEBHOOK__SECRET"),
        (
            WebhookSettings(url="https://hooks.example.org/x", secret=SecretStr("")),
            "OVERHEARD_WEBHOOK__SECRET",
        ),
        (WebhookSettings(url="ftp://files.example.org/", secret=SecretStr(SECRET)), "not an http"),
    ],
)
def test_missing_settings_are_configuration_errors(webhook: WebhookSettings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_settings(Settings(webhook=webhook))


def test_the_url_is_shown_without_credentials_or_query() -> None:
    url = "https://hook:p4ss@hooks.example.org:8443/in/issues?token=t0k3n#x"
    assert shown_url(url) == "https://hooks.example.org:8443/in/issues"
    assert (
        repr(WebhookSink(url, SECRET)) == "WebhookSink('https://hooks.example.org:8443/in/issues')"
    )


# -- requests ----------------------------------------------------------------------------------


def test_posts_each_issue_signed_with_its_id_as_idempotency_key(
    receiver: Receiver, sink: WebhookSink
) -> None:
    issues = make_issues(3)
    assert sink.write(issues) == [WRITTEN] * 3
    assert [r.path for r in receiver.requests] == ["/hooks/issues"] * 3
    for request, issue in zip(receiver.requests, issues, strict=True):
        assert request.headers["content-type"] == "application/json"
        assert request.headers["idempotency-key"] == str(issue.id)
        assert request.headers["x-overheard-signature"] == sign(request.body, SECRET)
        assert request.headers["user-agent"].startswith("overheard/")
        assert Issue.from_bytes(request.body) == issue
    assert list(receiver.stored) == [str(issue.id) for issue in issues]


def test_the_signature_is_the_hex_hmac_sha256_of_the_body() -> None:
    # RFC 4231, test case 2.
    body, key = b"what do ya want for nothing?", "Jefe"
    assert sign(body, key) == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


@pytest.mark.parametrize("status", [200, 201, 202, 204, 409])
def test_2xx_and_409_are_written(receiver: Receiver, sink: WebhookSink, status: int) -> None:
    with receiver.answering(lambda request: Answer(status)):
        assert sink.write([make_issue()]) == [WRITTEN]


def test_a_redelivered_issue_is_written_and_the_receiver_keeps_one(
    receiver: Receiver, sink: WebhookSink
) -> None:
    first, second = make_issues(2)
    assert sink.write([first, second, first]) == [WRITTEN] * 3
    assert len(receiver.requests) == 2  # one request per issue of a batch
    assert sink.write([second, first]) == [WRITTEN] * 2  # the receiver answers 409
    assert len(receiver.stored) == 2


def test_429_retries_the_batch_after_retry_after(receiver: Receiver, sink: WebhookSink) -> None:
    issues = make_issues(3)
    with receiver.answering(lambda request: Answer(429, "slow down", {"Retry-After": "7"})):
        outcomes = sink.write(issues)
    assert outcomes[0] == Retry(f"{shown_url(receiver.url)} answered HTTP 429", 7.0)
    assert outcomes[1:] == [Retry(f"not tried: {outcomes[0].reason}", 7.0)] * 2  # type: ignore[union-attr]
    assert len(receiver.requests) == 1  # no knocking harder


def test_503_with_a_date_retries_when_it_says(receiver: Receiver, sink: WebhookSink) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    with receiver.answering(lambda request: Answer(503, headers={"Retry-After": later})):
        (outcome,) = sink.write([make_issue()])
    assert isinstance(outcome, Retry)
    assert outcome.delay is not None and 100 < outcome.delay <= 120


def test_a_500_retries_that_issue_and_writes_the_others(
    receiver: Receiver, sink: WebhookSink
) -> None:
    issues = make_issues(3)
    with receiver.answering(for_issue(issues[1], Answer(500, "Internal Server Error"))):
        outcomes = sink.write(issues)
    assert outcomes[0] == outcomes[2] == WRITTEN
    assert outcomes[1] == Retry(
        f"{shown_url(receiver.url)} answered HTTP 500 to issue {issues[1].id}"
    )
    assert sink.write(issues) == [WRITTEN] * 3
    assert sorted(receiver.stored) == sorted(str(i.id) for i in issues)


def test_other_4xx_rejects_that_issue_with_the_status_and_body(
    receiver: Receiver, sink: WebhookSink
) -> None:
    issues = make_issues(3)
    problem = json.dumps({"error": "category 'pothole' unknown", "detail": "x" * 500})
    answer = Answer(422, problem, {"Content-Type": "application/problem+json"})
    with receiver.answering(for_issue(issues[0], answer)):
        outcomes = sink.write(issues)
    assert outcomes[1:] == [WRITTEN, WRITTEN]
    assert isinstance(outcomes[0], Rejected)
    assert outcomes[0].reason == f"HTTP 422 Unprocessable Entity: {problem[:200]}"


@pytest.mark.parametrize("status", [301, 401, 403, 404])
def test_an_endpoint_that_refuses_us_is_a_setup_error(
    receiver: Receiver, sink: WebhookSink, status: int
) -> None:
    headers = {"Location": "https://elsewhere.example.org/"} if status == 301 else {}
    with (
        receiver.answering(lambda request: Answer(status, headers=headers)),
        pytest.raises(WebhookSetupError, match=f"refuses our requests with HTTP {status}"),
    ):
        sink.write([make_issue()])


def test_a_wrong_secret_is_refused_by_the_receiver(receiver: Receiver) -> None:
    wrong = WebhookSink(receiver.url, "not-the-secret")
    wrong.open()
    with pytest.raises(WebhookSetupError, match="HTTP 401"):
        wrong.write([make_issue()])
    wrong.close()
    assert receiver.stored == {}


def test_a_receiver_that_does_not_answer_in_time_means_retry(receiver: Receiver) -> None:
    slow = WebhookSink(receiver.url, SECRET, timeout_s=0.2)
    slow.open()
    issues = make_issues(2)
    started = time.monotonic()
    with receiver.answering(lambda request: Answer(201, delay=1.0)):
        outcomes = slow.write(issues)
    slow.close()
    assert time.monotonic() - started < 0.9
    assert outcomes[0] == Retry(f"{shown_url(receiver.url)} did not answer within 0.2 s")
    assert outcomes[1] == Retry(f"not tried: {outcomes[0].reason}")  # type: ignore[union-attr]


def test_a_receiver_that_is_down_means_retry() -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/issues"  # nobody listens there
    down = WebhookSink(url, SECRET, timeout_s=2)
    down.open()
    outcomes = down.write(make_issues(2))
    down.close()
    assert outcomes == [
        Retry(f"cannot reach {url}: ConnectError"),
        Retry(f"not tried: cannot reach {url}: ConnectError"),
    ]


def test_write_before_open_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="before open"):
        WebhookSink("http://127.0.0.1:9/", SECRET).write([make_issue()])


def test_the_secret_and_url_credentials_are_never_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    url = receiver.url.replace("http://", "http://hook:p4ss-w0rd%40x@") + "?token=t0k3n-9f2"
    sink = WebhookSink(url, SECRET, timeout_s=2)
    issues = make_issues(3)
    script = for_issue(issues[2], Answer(400, "bad request"))

    def answers(request: Request) -> Answer | None:
        return script(request) or (Answer(503) if request is receiver.requests[0] else None)

    with caplog.at_level(logging.DEBUG), receiver.answering(answers):
        sink.open()
        outcomes = [sink.write(issues), sink.write(issues)]
        sink.close()
    shown = caplog.text + repr(sink) + repr(outcomes)
    assert "HTTP 400" in shown
    for secret in (SECRET, "p4ss-w0rd", "t0k3n-9f2"):  # the password is p4ss-w0rd@x
        assert secret not in shown


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("30", 30.0),
        ("Wed, 02 Dec 2026 12:00:30 GMT", 30.0),
        ("Wed, 02 Dec 2026 11:00:00 GMT", 0.0),
        ("soon", None),
    ],
)
def test_retry_after_is_seconds_or_a_date(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert retry_after(header, now) == seconds
