"""Replay through the Kafka broker: the daemon's stages as threads, on topics of its own.

Each replay gets its own topic prefix (`<prefix>.replay-<time>-<random>`), so its topics
and consumer groups are fresh and two replays never read each other's posts. The
archives are fed from the calling thread while the stages consume; the replay ends
when every stage has committed, in every partition of its source topic, the end
offset of that topic: the classify stage first (posts), then the sinks (issues, whose
end is final once classify has committed, since it flushes before committing). The
topics and groups are deleted afterwards; the summary says what happened.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from overheard.bus.kafka import connection_options
from overheard.retry import Stopped
from overheard.settings import BusSettings, Settings
from overheard.stages import StageRunner

log = logging.getLogger(__name__)

#: How often the replay compares committed offsets to end offsets, in seconds.
CHECK_EVERY_S = 0.2


class ReplayFailed(Exception):
    """A stage died of an unexpected error; the replay stopped."""


def fresh_bus(settings: Settings) -> Settings:
    """`settings` on the Kafka bus under a topic prefix no other replay uses."""
    run = f"replay-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    bus = settings.bus.model_copy(
        update={"kind": "kafka", "topic_prefix": f"{settings.bus.topic_prefix}.{run}"}
    )
    return settings.model_copy(update={"bus": bus})


def run_threaded(
    settings: BusSettings,
    runners: Sequence[tuple[StageRunner, str]],
    feed: Callable[[], None],
    stop: threading.Event,
) -> None:
    """Run each `(runner, source topic)` in a thread, `feed` here, and return once every
    runner consumed its topic to the end (in the order given). `stop` ends the runners."""
    failures: list[str] = []
    threads = [
        threading.Thread(
            target=_loop(runner, settings, stop, failures), name=runner.stage.label, daemon=True
        )
        for runner, _ in runners
    ]
    for thread in threads:
        thread.start()
    try:
        feed()
        with _Offsets(settings) as offsets:
            for runner, topic in runners:
                offsets.wait_consumed(runner.stage.group, topic, stop)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if failures:
        raise ReplayFailed(f"stage(s) failed: {', '.join(failures)}")


def _loop(
    runner: StageRunner, settings: BusSettings, stop: threading.Event, failures: list[str]
) -> Callable[[], None]:
    def run() -> None:
        try:
            runner.run(settings.batch_size, settings.poll_timeout_s)
        except Stopped:
            log.info("stage %s stopped while retrying", runner.stage.label)
        except Exception:
            log.exception("stage %s failed; stopping the replay", runner.stage.label)
            failures.append(runner.stage.label)
            stop.set()

    return run


class _Offsets:
    """Committed offsets of groups (admin client) against end offsets of topics."""

    def __init__(self, settings: BusSettings) -> None:
        self._admin = KafkaAdminClient(**connection_options(settings))
        self._ends = KafkaConsumer(**connection_options(settings))

    def __enter__(self) -> _Offsets:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._admin.close()
        self._ends.close()

    def behind(self, group: str, topic: str) -> int | None:
        """Messages of `topic` that `group` has not committed yet (None: not known yet)."""
        partitions = [
            TopicPartition(topic, p) for p in sorted(self._ends.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return None
        ends = self._ends.end_offsets(partitions)
        committed = self._admin.list_group_offsets(group).get(group, {})
        return sum(
            max(0, ends[tp] - (committed[tp].offset if tp in committed else 0)) for tp in partitions
        )

    def wait_consumed(self, group: str, topic: str, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.behind(group, topic) == 0:
                    return
            except KafkaError as exc:
                log.warning("could not compare %s's offsets to %s's end: %s", group, topic, exc)
            stop.wait(CHECK_EVERY_S)


def delete(settings: BusSettings, topics: Sequence[str], groups: Sequence[str]) -> None:
    """Remove a finished replay's topics and groups; what cannot be removed is logged."""
    try:
        admin = KafkaAdminClient(**connection_options(settings))
    except KafkaError as exc:
        log.warning("left the replay's topics %s: %s", ", ".join(topics), exc)
        return
    try:
        admin.delete_groups(list(groups))
        admin.delete_topics(list(topics), raise_errors=False)
    except KafkaError as exc:
        log.warning("left the replay's topics %s: %s", ", ".join(topics), exc)
    finally:
        admin.close()
