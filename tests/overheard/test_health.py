"""The health endpoint over real HTTP: alive, ready by named checks, and the metrics.

The daemon's own endpoint (bus, classifier and sink checks registered by the
stages) is exercised in test_signals.py, against the test broker.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import httpx
import pytest

from overheard import logs
from overheard.checks import reach_broker
from overheard.health import HealthServer, Readiness, cached
from overheard.settings import load_settings


@pytest.fixture
def checks() -> Readiness:
    return Readiness()


@pytest.fixture
def endpoint(checks: Readiness) -> Iterator[str]:
    server = HealthServer("127.0.0.1", 0, checks).start()
    try:
        yield server.url
    finally:
        server.close()


def test_healthz_says_alive(endpoint: str) -> None:
    answer = httpx.get(f"{endpoint}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"alive": True}


def test_readyz_is_ready_only_when_every_named_check_is(endpoint: str, checks: Readiness) -> None:
    checks.mark("classifier", True, "Baltimore loaded")
    checks.mark("sink:sql", False, "database unreachable")
    answer = httpx.get(f"{endpoint}/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["ready"] is False
    assert {c["name"]: c["ok"] for c in body["checks"]} == {"classifier": True, "sink:sql": False}
    assert "database unreachable" in answer.text

    checks.mark("sink:sql", True, "last write succeeded")
    answer = httpx.get(f"{endpoint}/readyz")
    assert answer.status_code == 200
    assert answer.json()["ready"] is True


def test_a_component_plugs_in_a_probe_whose_failure_is_its_answer(
    endpoint: str, checks: Readiness
) -> None:
    def models() -> str:
        raise FileNotFoundError("config/models/baltimore/complaint.onnx")

    checks.add("models", models)
    answer = httpx.get(f"{endpoint}/readyz")
    assert answer.status_code == 503
    (check,) = answer.json()["checks"]
    assert check == {
        "name": "models",
        "ok": False,
        "detail": "FileNotFoundError: config/models/baltimore/complaint.onnx",
    }


def test_readyz_masks_secrets_in_what_checks_report(
    endpoint: str, checks: Readiness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "_masker", logs.Masker(["hunter2-api-key"]))

    def open311() -> str:
        raise ConnectionError(
            "POST https://311.example.gov/requests.json?api_key=hunter2-api-key failed; "
            "ledger postgresql://overheard:ledger-pw@db/ledger"
        )

    checks.add("sink:open311", open311)
    answer = httpx.get(f"{endpoint}/readyz")
    assert "hunter2-api-key" not in answer.text
    assert "ledger-pw" not in answer.text
    assert "api_key=***" in answer.text


def test_the_bus_check_says_not_ready_when_no_broker_answers(
    endpoint: str, checks: Readiness
) -> None:
    settings = load_settings(None, {"bus": {"kind": "kafka", "bootstrap_servers": "127.0.0.1:9"}})
    checks.add("bus", cached(partial(reach_broker, settings, timeout_ms=1000), ttl_s=60))
    answer = httpx.get(f"{endpoint}/readyz", timeout=30)
    assert answer.status_code == 503
    (check,) = answer.json()["checks"]
    assert check["name"] == "bus"
    assert "bootstrap" in check["detail"]


def test_the_bus_check_is_ready_against_the_broker(
    endpoint: str, checks: Readiness, kafka_bootstrap: str
) -> None:
    settings = load_settings(None, {"bus": {"kind": "kafka", "bootstrap_servers": kafka_bootstrap}})
    checks.add("bus", cached(partial(reach_broker, settings), ttl_s=60))
    answer = httpx.get(f"{endpoint}/readyz", timeout=30)
    assert answer.status_code == 200, answer.text


def test_a_cached_probe_asks_once_per_period() -> None:
    asked: list[int] = []

    def probe() -> str:
        asked.append(1)
        if len(asked) == 1:
            raise ConnectionError("down")
        return "up"

    answer = cached(probe, ttl_s=3600)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            answer()
    assert len(asked) == 1
    assert cached(probe, ttl_s=0)() == "up"


def test_metrics_are_served_in_the_prometheus_text_format(endpoint: str) -> None:
    answer = httpx.get(f"{endpoint}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "# TYPE overheard_issues_out_total counter" in answer.text
    assert "# TYPE overheard_stage_batch_seconds histogram" in answer.text


def test_an_unknown_path_is_not_found(endpoint: str) -> None:
    assert httpx.get(f"{endpoint}/nothing").status_code == 404
