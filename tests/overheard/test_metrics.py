"""The metrics the stages export, read back from the registry the endpoint serves.

Metrics are process-wide, so each test compares values before and after what it does.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence

import pytest
from prometheus_client import generate_latest

from overheard import metrics
from overheard.bus.base import Record, Topics
from overheard.bus.memory import MemoryBus
from overheard.classify.decide import Classifier
from overheard.errors import TransientError
from overheard.model import Issue
from overheard.paths import CONFIG_DIR
from overheard.profile import load_profile
from overheard.settings import RetrySettings
from overheard.sinks.base import WRITTEN, BaseSink, Outcome
from overheard.stages import ClassifyStage, SinkStage, StageRunner
from tests.factories import make_issue, post

FAST = RetrySettings(initial_s=0.001, max_s=0.01)
TOPICS = Topics.for_city("metrics", "baltimore")


def value(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


class FlakySink(BaseSink):
    """Down for its first write, then writes everything."""

    name = "flaky"

    def __init__(self) -> None:
        self.down = True

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        if self.down:
            self.down = False
            raise TransientError("database down")
        return [WRITTEN for _ in issues]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_profile("baltimore"))


def publish(bus: MemoryBus, topic: str, *values: bytes) -> None:
    producer = bus.producer()
    for raw in values:
        producer.send(topic, raw)
    producer.flush()


def test_classify_counts_posts_in_dead_letters_latency_and_lag(classifier: Classifier) -> None:
    bus = MemoryBus(TOPICS)
    publish(
        bus,
        TOPICS.posts,
        post("Huge pothole on Eastern Ave again", "t3_m1").to_bytes(),
        b"{broken",
        post("Orioles win!", "t3_m2").to_bytes(),
    )
    before = {
        "in": value("overheard_posts_in_total", connector="test"),
        "dead": value("overheard_deadletters_total", stage="classify", reason="MalformedMessage"),
        "batches": value("overheard_stage_batch_seconds_count", stage="classify"),
        "messages": value("overheard_stage_messages_total", stage="classify"),
    }
    stage = ClassifyStage(classifier, TOPICS.issues, "classify")
    runner = StageRunner.on(bus, stage, TOPICS.posts, FAST, threading.Event())
    assert runner.step(2, 0) == 2
    # Read right after the poll: one message is still waiting in the partition.
    assert value("overheard_consumer_lag", stage="classify", topic=TOPICS.posts, partition="0") == 1
    assert runner.step(10, 0) == 1

    assert value("overheard_posts_in_total", connector="test") == before["in"] + 2
    assert (
        value("overheard_deadletters_total", stage="classify", reason="MalformedMessage")
        == before["dead"] + 1
    )
    assert value("overheard_stage_batch_seconds_count", stage="classify") == before["batches"] + 2
    assert value("overheard_stage_messages_total", stage="classify") == before["messages"] + 3


def test_sink_counts_issues_by_category_and_sink_and_its_retries() -> None:
    bus = MemoryBus(TOPICS)
    issues = [make_issue("t3_s1"), make_issue("t3_s2", category="graffiti", service_code=None)]
    publish(bus, TOPICS.issues, *(i.to_bytes() for i in issues))
    before = {
        "pothole": value("overheard_issues_out_total", category="pothole", sink="flaky"),
        "graffiti": value("overheard_issues_out_total", category="graffiti", sink="flaky"),
        "retries": value("overheard_retries_total", operation="sink write"),
    }
    stage = SinkStage(FlakySink(), "sink", FAST, threading.Event())
    runner = StageRunner.on(bus, stage, TOPICS.issues, FAST, threading.Event())
    assert runner.step(10, 0) == 2

    assert (
        value("overheard_issues_out_total", category="pothole", sink="flaky")
        == before["pothole"] + 1
    )
    assert (
        value("overheard_issues_out_total", category="graffiti", sink="flaky")
        == before["graffiti"] + 1
    )
    assert value("overheard_retries_total", operation="sink write") == before["retries"] + 1


def test_the_oldest_unprocessed_age_grows_while_held_and_is_zero_once_caught_up() -> None:
    an_hour_ago_ms = int((time.time() - 3600) * 1000)
    held = [Record("t", 0, 0, None, b"{}", (), an_hour_ago_ms)]
    metrics.polled("test-stage", held)
    assert value("overheard_oldest_unprocessed_age_seconds", stage="test-stage") >= 3600
    metrics.polled("test-stage", [])
    assert value("overheard_oldest_unprocessed_age_seconds", stage="test-stage") == 0


def test_connectors_count_rate_limit_waits() -> None:
    before = value("overheard_rate_limit_wait_seconds_total", connector="x")
    waits = value("overheard_rate_limit_waits_total", connector="x")
    metrics.rate_limited("x", 900.0)
    assert value("overheard_rate_limit_wait_seconds_total", connector="x") == before + 900
    assert value("overheard_rate_limit_waits_total", connector="x") == waits + 1


def test_every_metric_is_exported_under_its_documented_name() -> None:
    """The names the alert rules and the dashboard in config/deploy/ use."""
    exported = generate_latest(metrics.registry).decode()
    for name in (
        "overheard_posts_in_total",
        "overheard_issues_out_total",
        "overheard_deadletters_total",
        "overheard_consumer_lag",
        "overheard_stage_batch_seconds_bucket",
        "overheard_stage_messages_total",
        "overheard_retries_total",
        "overheard_rate_limit_waits_total",
        "overheard_rate_limit_wait_seconds_total",
        "overheard_oldest_unprocessed_age_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total').removesuffix('_bucket')}" in exported, name


def test_the_deploy_examples_use_only_metrics_that_exist() -> None:
    """Alert rules and the dashboard in config/deploy/ name real metrics (and parse)."""
    yaml = pytest.importorskip("yaml")
    deploy = CONFIG_DIR / "deploy"
    rules = yaml.safe_load((deploy / "alerts.yml").read_text())
    yaml.safe_load((deploy / "compose.yaml").read_text())
    dashboard = json.loads((deploy / "grafana-dashboard.json").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"overheard_\w+", expr)}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
    exported = {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }
    assert used, "no overheard metric found in the examples"
    assert used <= exported, used - exported
