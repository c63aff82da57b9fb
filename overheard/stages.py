"""The consuming stages and the loop that runs them with the delivery rules of DESIGN.md.

Each step: poll a batch → handle it → send what it produced and its dead
letters → wait until the bus acknowledged them → commit the batch's offsets.
A transient failure anywhere before the commit retries the whole step with
backoff (handling is deterministic and every downstream write idempotent, so
a repeat changes nothing); the offsets move only after the results are safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

from overheard import health, metrics
from overheard.bus.base import Bus, Consumer, Headers, Payload, Producer, Record
from overheard.classify.decide import Classifier, Decision
from overheard.clusters import cluster_key
from overheard.deadletter import DeadLetter
from overheard.errors import MessageError, Rebalanced, SinkRejected, TransientError
from overheard.model import Issue, Message, Post
from overheard.retry import delays, retry_transient
from overheard.settings import RetrySettings
from overheard.sinks.base import Rejected, Retry, Sink, Written
from overheard.summary import Summary

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Outgoing:
    topic: str
    #: The bytes, or the message itself: the bus encodes it when it needs bytes.
    value: Payload
    key: bytes | None = None
    headers: Headers = ()


@dataclass
class Handled:
    """What a stage made of a batch."""

    outgoing: list[Outgoing] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    #: Issues written, by sink name.
    written: dict[str, int] = field(default_factory=dict)
    #: The issues themselves, by sink name (for the metrics, by category).
    written_issues: dict[str, list[Issue]] = field(default_factory=dict)


class Stage(Protocol):
    name: str
    group: str
    #: Names this stage in metrics and readiness: "classify", "sink:sql".
    label: str

    def handle(self, records: Sequence[Record]) -> Handled: ...


def _letter(stage: str, record: Record, error: Exception) -> DeadLetter:
    return DeadLetter(
        stage=stage,  # type: ignore[arg-type]
        reason=str(error),
        error=type(error).__name__,
        origin=record.origin,
        original=record.value,
        key=record.key,
    )


def _decoded(record: Record, kind: type[M]) -> M:
    """The record's message: the object the bus carried when it is a `kind`, else decoded
    from the bytes (raising a `MessageError` when they are not one). Messages are
    immutable, so an object shared with the producer is safe to use."""
    message = record.message
    if isinstance(message, kind):
        return message
    return kind.from_bytes(record.value)


class ClassifyStage:
    """posts → issues: decode, run the cascade, emit the issues."""

    name = "classify"
    label = "classify"

    def __init__(self, classifier: Classifier, issues_topic: str, group: str) -> None:
        self.classifier = classifier
        self.issues_topic = issues_topic
        self.group = group

    def handle(self, records: Sequence[Record]) -> Handled:
        handled = Handled()
        posts: list[Post] = []
        for record in records:
            try:
                posts.append(_decoded(record, Post))
            except MessageError as exc:
                handled.deadletters.append(_letter(self.name, record, exc))
        handled.decisions = self.classifier.classify(posts)
        # Asked once a batch: most posts are no issue, and the record is built only to be shown.
        debug = log.isEnabledFor(logging.DEBUG)
        for decision in handled.decisions:
            if decision.issue is None:
                if debug:
                    log.debug(
                        "post %s: %s",
                        decision.post.id,
                        decision.outcome,
                        extra={"post_id": decision.post.id, "outcome": str(decision.outcome)},
                    )
                continue
            issue = decision.issue
            handled.outgoing.append(
                # Keyed by city and category: one partition keeps a category's issues in
                # order, as clustering at the sinks needs (`overheard.clusters`).
                Outgoing(self.issues_topic, issue, key=cluster_key(issue).encode())
            )
            log.info(
                "issue %s from post %s: %s",
                issue.id,
                issue.post.id,
                issue.category.name,
                extra={
                    "post_id": issue.post.id,
                    "issue_id": str(issue.id),
                    "outcome": str(decision.outcome),
                    "category": issue.category.name,
                },
            )
        return handled


class SinkStage:
    """issues → a sink: write each batch, retry what is transient, dead-letter what is rejected."""

    name = "sink"

    def __init__(
        self,
        sink: Sink,
        group: str,
        retry: RetrySettings,
        stop: threading.Event,
    ) -> None:
        self.sink = sink
        self.retry = retry
        self.stop = stop
        self.group = group
        self.label = f"sink:{sink.name}"

    def handle(self, records: Sequence[Record]) -> Handled:
        handled = Handled()
        pending: list[tuple[Record, Issue]] = []
        for record in records:
            try:
                pending.append((record, _decoded(record, Issue)))
            except MessageError as exc:
                handled.deadletters.append(_letter(self.name, record, exc))
        written: list[Issue] = []
        waits = delays(self.retry)
        while pending:
            outcomes = retry_transient(
                partial(self.sink.write, [issue for _, issue in pending]),
                self.retry,
                self.stop,
                f"sink {self.sink.name}",
                on_retry=self._unreachable,
            )
            health.readiness.mark(self.label, True, "last write succeeded")
            if len(outcomes) != len(pending):
                raise RuntimeError(
                    f"sink {self.sink.name} returned {len(outcomes)} outcomes "
                    f"for {len(pending)} issues"
                )
            again: list[tuple[Record, Issue]] = []
            delay = 0.0
            for (record, issue), outcome in zip(pending, outcomes, strict=True):
                ids = {"post_id": issue.post.id, "issue_id": str(issue.id), "sink": self.sink.name}
                if isinstance(outcome, Written):
                    written.append(issue)
                    log.info("issue %s written to %s", issue.id, self.sink.name, extra=ids)
                elif isinstance(outcome, Rejected):
                    letter = _letter(self.name, record, SinkRejected(outcome.reason))
                    handled.deadletters.append(letter)
                    log.info(
                        "issue %s rejected by %s: %s",
                        issue.id,
                        self.sink.name,
                        outcome.reason,
                        extra=ids,
                    )
                elif isinstance(outcome, Retry):
                    again.append((record, issue))
                    delay = max(delay, outcome.delay or 0.0)
            pending = again
            if pending:
                metrics.retried("sink write")
                wait = max(delay, next(waits))
                log.warning(
                    "sink %s: %d issues to retry in %.1fs", self.sink.name, len(again), wait
                )
                if self.stop.wait(wait):
                    raise TransientError(f"stopped with {len(pending)} issues not yet written")
        handled.written[self.sink.name] = len(written)
        handled.written_issues[self.sink.name] = written
        return handled

    def _unreachable(self, error: TransientError, _wait: float) -> None:
        metrics.retried("sink write")
        health.readiness.mark(self.label, False, str(error))


class StageRunner:
    """Runs one stage against the bus with the commit-after-acknowledgement discipline."""

    def __init__(
        self,
        stage: Stage,
        consumer: Consumer,
        producer: Producer,
        deadletters_topic: str,
        retry: RetrySettings,
        stop: threading.Event,
        summary: Summary | None = None,
    ) -> None:
        self.stage = stage
        self.consumer = consumer
        self.producer = producer
        self.deadletters_topic = deadletters_topic
        self.retry = retry
        self.stop = stop
        self.summary = summary
        self.lag = metrics.LagProbe(stage.label)

    @classmethod
    def on(
        cls,
        bus: Bus,
        stage: Stage,
        source_topic: str,
        retry: RetrySettings,
        stop: threading.Event,
        summary: Summary | None = None,
    ) -> StageRunner:
        return cls(
            stage,
            bus.consumer(source_topic, stage.group),
            bus.producer(),
            bus.topics.deadletters,
            retry,
            stop,
            summary,
        )

    def step(self, max_records: int, timeout_s: float) -> int:
        """One poll-handle-send-commit cycle; returns how many records it consumed."""
        records = self.consumer.poll(max_records, timeout_s)
        metrics.polled(self.stage.label, records)
        self.lag.maybe_update(self.consumer)
        if not records:
            return 0
        started = time.perf_counter()
        try:
            handled = retry_transient(
                lambda: self._process(records),
                self.retry,
                self.stop,
                f"stage {self.stage.name}",
                on_retry=lambda _error, _wait: metrics.retried("stage"),
            )
            metrics.committed(self.stage.label, records, time.perf_counter() - started, handled)
        except Rebalanced as exc:
            log.warning(
                "stage %s lost its partitions before committing %d messages; their new "
                "owner processes them again (%s)",
                self.stage.name,
                len(records),
                exc,
            )
        return len(records)

    def _process(self, records: list[Record]) -> Handled:
        handled = self.stage.handle(records)
        for out in handled.outgoing:
            self.producer.send(out.topic, out.value, key=out.key, headers=out.headers)
        for letter in handled.deadletters:
            log.warning("dead letter from %s at %s: %s", letter.stage, letter.origin, letter.reason)
            self.producer.send(
                self.deadletters_topic,
                letter.original,
                key=letter.key,
                headers=tuple(letter.headers()),
            )
        self.producer.flush()
        self.consumer.commit(records)
        if self.summary is not None:
            self.summary.decided(handled.decisions)
            for sink, count in handled.written.items():
                self.summary.written(sink, count)
            for letter in handled.deadletters:
                self.summary.dead_lettered(letter)
        return handled

    def run(self, max_records: int, timeout_s: float) -> None:
        """Step until asked to stop."""
        while not self.stop.is_set():
            self.step(max_records, timeout_s)

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()
