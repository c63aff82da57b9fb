"""`overheard run`: the stages as long-running loops against Kafka.

Each stage is a consumer group, so a city scales by running more processes of
a stage, up to its topic's partitions. SIGTERM or SIGINT stops fetching; the
batch in hand is finished or left uncommitted (then redelivered), never lost.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import partial
from pathlib import Path

from overheard.ingest.checkpoint import CheckpointStore
from overheard.pipeline import Pipeline, feed_archive
from overheard.retry import Stopped, retry_transient
from overheard.stages import StageRunner

log = logging.getLogger(__name__)


class StageName(StrEnum):
    ALL = "all"
    INGEST = "ingest"
    CLASSIFY = "classify"
    SINK = "sink"


def install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        log.info("received %s: stopping after the batch in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class StageFailed(Exception):
    """A stage met an error it cannot handle (a bug or a broken setup); the daemon stopped."""


def guarded(
    name: str, work: Callable[[], None], stop: threading.Event, failures: list[str]
) -> Callable[[], None]:
    """Run `work`; on an unexpected error, log it and stop every stage, uncommitted."""

    def run() -> None:
        try:
            work()
        except Exception:
            log.exception("stage %s failed; stopping every stage (nothing is committed)", name)
            failures.append(name)
            stop.set()

    return run


def _loop(runner: StageRunner, pipeline: Pipeline) -> Callable[[], None]:
    bus = pipeline.settings.bus

    def run() -> None:
        try:
            runner.run(bus.batch_size, bus.poll_timeout_s)
        except Stopped:
            log.info(
                "stage %s stopped while retrying; its batch stays uncommitted", runner.stage.name
            )
        finally:
            runner.close()

    return run


def _ingest(pipeline: Pipeline, archives: Sequence[Path]) -> Callable[[], None]:
    def run() -> None:
        store = CheckpointStore(pipeline.settings.ingest.checkpoint_dir / "archive.json")
        producer = pipeline.bus.producer()
        try:
            for path in archives:
                feed_archive(pipeline, path, producer, store)
                if pipeline.stop.is_set():
                    break
        except Stopped:
            log.info("ingest stopped while retrying; its checkpoint was not advanced")
        finally:
            producer.close()

    return run


def run_daemon(pipeline: Pipeline, stage: StageName, archives: Sequence[Path]) -> None:
    """Run the chosen stages until stopped (ingest alone ends when its archives do).

    Raises StageFailed when a stage died of an unexpected error (after stopping the rest).
    """
    retry_transient(
        pipeline.bus.ensure_topics, pipeline.settings.retry, pipeline.stop, "creating topics"
    )
    work: dict[str, Callable[[], None]] = {}
    if stage in (StageName.ALL, StageName.INGEST) and archives:
        work["ingest"] = _ingest(pipeline, archives)
    retry, stop = pipeline.settings.retry, pipeline.stop
    if stage in (StageName.ALL, StageName.CLASSIFY):
        runner = retry_transient(pipeline.classify_runner, retry, stop, "joining the bus")
        work["classify"] = _loop(runner, pipeline)
    sinks = pipeline.open_sinks() if stage in (StageName.ALL, StageName.SINK) else []
    for sink in sinks:
        runner = retry_transient(
            partial(pipeline.sink_runner, sink), retry, stop, "joining the bus"
        )
        work[f"sink:{sink.name}"] = _loop(runner, pipeline)
    failures: list[str] = []
    threads = [
        threading.Thread(target=guarded(name, fn, stop, failures), name=name)
        for name, fn in work.items()
    ]
    for thread in threads:
        thread.start()
    log.info("running %s", ", ".join(work) or "nothing")
    for thread in threads:
        thread.join()
    for sink in sinks:
        sink.close()
    if failures:
        raise StageFailed(f"stage(s) failed: {', '.join(failures)}")
