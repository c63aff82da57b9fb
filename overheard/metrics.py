"""Every Prometheus metric overheard exports, and the few hooks that update them.

The metric objects live here and nowhere else; the stages, the daemon and the
connectors call the small functions below, so what is counted, under which
name and with which labels can be read in one place. Labels stay bounded: a
stage, a sink, a category, a connector, an error type, a partition — never a
post, an issue or a free-text reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from overheard.bus.base import Consumer, Record
from overheard.deadletter import DeadLetter
from overheard.errors import TransientError

if TYPE_CHECKING:
    from overheard.stages import Handled

log = logging.getLogger(__name__)

#: Where the metrics are registered: the process-wide registry, with the process collectors
#: (memory, CPU, open files) that prometheus-client adds to it.
registry: CollectorRegistry = REGISTRY

POSTS_IN = Counter(
    "overheard_posts_in",
    "Posts that entered classification, by the connector that collected them.",
    ["connector"],
    registry=registry,
)
ISSUES_OUT = Counter(
    "overheard_issues_out",
    "Issues a sink acknowledged as written, by category and sink.",
    ["category", "sink"],
    registry=registry,
)
DEADLETTERS = Counter(
    "overheard_deadletters",
    "Messages sent to the dead-letter topic, by stage and reason (the error type).",
    ["stage", "reason"],
    registry=registry,
)
CONSUMER_LAG = Gauge(
    "overheard_consumer_lag",
    "Messages in a partition not yet consumed by the stage's consumer group member.",
    ["stage", "topic", "partition"],
    registry=registry,
)
STAGE_SECONDS = Histogram(
    "overheard_stage_batch_seconds",
    "Time to handle one batch, send its results, wait for the bus and commit.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=registry,
)
STAGE_MESSAGES = Counter(
    "overheard_stage_messages",
    "Messages a stage consumed and committed.",
    ["stage"],
    registry=registry,
)
RETRIES = Counter(
    "overheard_retries",
    "Transient failures retried with backoff, by what was being done.",
    ["operation"],
    registry=registry,
)
RATE_LIMIT_WAITS = Counter(
    "overheard_rate_limit_waits",
    "Times a connector waited because a platform's rate limit was reached.",
    ["connector"],
    registry=registry,
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "overheard_rate_limit_wait_seconds",
    "Seconds connectors spent waiting on platforms' rate limits.",
    ["connector"],
    registry=registry,
)
OLDEST_UNPROCESSED_AGE = Gauge(
    "overheard_oldest_unprocessed_age_seconds",
    "Age of the oldest message a stage holds but has not committed yet (0 when caught up), "
    "measured from when it entered the bus.",
    ["stage"],
    registry=registry,
)


class _Oldest:
    """When the oldest message each stage holds entered the bus; read at scrape time.

    Read at scrape time rather than set once, so the age keeps growing while a
    batch is stuck behind a retried outage.
    """

    def __init__(self) -> None:
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()

    def hold(self, stage: str, records: Sequence[Record]) -> None:
        stamps = [r.timestamp_ms / 1000 for r in records if r.timestamp_ms]
        with self._lock:
            if stage not in self._since:
                OLDEST_UNPROCESSED_AGE.labels(stage).set_function(lambda: self.age(stage))
            self._since[stage] = min(stamps) if stamps else 0.0

    def release(self, stage: str) -> None:
        with self._lock:
            if stage in self._since:
                self._since[stage] = 0.0

    def age(self, stage: str) -> float:
        since = self._since.get(stage, 0.0)
        return max(0.0, time.time() - since) if since else 0.0


_oldest = _Oldest()


def polled(stage: str, records: Sequence[Record]) -> None:
    """A stage took a batch from the bus (an empty batch means it has caught up)."""
    if records:
        _oldest.hold(stage, records)
    else:
        _oldest.release(stage)


def committed(stage: str, records: Sequence[Record], seconds: float, handled: Handled) -> None:
    """A batch is done: its results acknowledged by the bus and its offsets committed.

    Counted only now, so a batch retried or given up to a rebalance is counted once
    by whoever commits it.
    """
    STAGE_SECONDS.labels(stage).observe(seconds)
    STAGE_MESSAGES.labels(stage).inc(len(records))
    connectors: dict[str, int] = {}
    for decision in handled.decisions:
        connector = decision.post.provenance.connector
        connectors[connector] = connectors.get(connector, 0) + 1
    for connector, count in connectors.items():
        POSTS_IN.labels(connector).inc(count)
    for sink, issues in handled.written_issues.items():
        for issue in issues:
            ISSUES_OUT.labels(issue.category.name, sink).inc()
    for letter in handled.deadletters:
        dead_lettered(letter)
    _oldest.release(stage)


def dead_lettered(letter: DeadLetter) -> None:
    DEADLETTERS.labels(letter.stage, letter.error).inc()


def retried(operation: str) -> None:
    """Count one retry of `operation` (a bounded name: "stage", "sink write", "join", …)."""
    RETRIES.labels(operation).inc()


def rate_limited(connector: str, seconds: float) -> None:
    """For connectors: they waited `seconds` because a platform's rate limit was reached."""
    RATE_LIMIT_WAITS.labels(connector).inc()
    RATE_LIMIT_WAIT_SECONDS.labels(connector).inc(seconds)


class LagProbe:
    """Updates a stage's per-partition lag at most every `interval_s` (it asks the broker)."""

    def __init__(self, stage: str, interval_s: float = 5.0) -> None:
        self.stage = stage
        self.interval_s = interval_s
        self._next = 0.0
        self._shown: set[tuple[str, int]] = set()

    def maybe_update(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_s
        try:
            lags = consumer.lag_by_partition()
        except TransientError as exc:
            log.debug("lag of %s not updated: %s", self.stage, exc)
            return
        for topic, partition in self._shown - set(lags):
            CONSUMER_LAG.remove(self.stage, topic, str(partition))
        for (topic, partition), lag in lags.items():
            CONSUMER_LAG.labels(self.stage, topic, str(partition)).set(lag)
        self._shown = set(lags)
