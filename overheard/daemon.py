"""`overheard run`: the stages as long-running loops against Kafka.

Each stage is a consumer group, so a city scales by running more processes of
a stage, up to its topic's partitions. SIGTERM or SIGINT stops fetching; the
batch in hand is finished or left uncommitted (then redelivered), never lost.
SIGHUP reads the city profile again; the classify stage uses it from its next
batch on. The main thread only waits: it watches the grace period after a stop,
and reloads the profile (which may take seconds) outside the signal handler.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import partial
from pathlib import Path

from overheard import health
from overheard.checks import reach_broker
from overheard.errors import ConfigError, OverheardError
from overheard.ingest.checkpoint import CheckpointStore
from overheard.ingest.cursors import CursorStore
from overheard.ingest.live import LiveConnector, feed_live
from overheard.pipeline import Pipeline, feed_archive
from overheard.profile import load_profile
from overheard.retention import Housekeeping
from overheard.retry import Stopped, retry_transient
from overheard.stages import ClassifyStage, StageRunner

log = logging.getLogger(__name__)


class StageName(StrEnum):
    ALL = "all"
    INGEST = "ingest"
    CLASSIFY = "classify"
    SINK = "sink"


def install_signal_handlers(stop: threading.Event) -> threading.Event:
    """SIGTERM/SIGINT set `stop`; SIGHUP sets the returned event (reload the city profile)."""
    reload = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("received %s: stopping after the batch in hand", signal.Signals(signum).name)
        stop.set()

    def hangup(_signum: int, _frame: object) -> None:
        log.info("received SIGHUP: reloading the city profile")
        reload.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGHUP, hangup)
    return reload


class ShutdownTimedOut(Exception):
    """The stages did not finish within the grace period; their batches stay uncommitted."""


def reload_profile(pipeline: Pipeline, stage: ClassifyStage | None) -> None:
    """Read the city profile again and classify with it from the next batch on.

    A profile that fails to load, or names another city (whose topics differ),
    is refused: the one in use stays.
    """
    try:
        profile = load_profile(pipeline.settings.city)
        if profile.name != pipeline.profile.name:
            raise ConfigError(
                f"the profile now names {profile.name}, not {pipeline.profile.name}: "
                "another city needs a restart"
            )
        pipeline.profile = profile
        if stage is not None:
            stage.classifier = pipeline.classifier()
    except (OverheardError, OSError, ValueError) as exc:
        log.error("kept the city profile in use, the new one failed: %s", exc)
        return
    log.info(
        "reloaded the city profile: %s %s",
        profile.name,
        profile.city.version,
        extra={"profile_version": profile.city.version},
    )


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


def _live(pipeline: Pipeline) -> Callable[[], None]:
    """The X or Reddit connector (`ingest.connector`), made here so a setup error stops the
    daemon before any stage starts; its cursors live in `<checkpoint_dir>/live.sqlite`."""
    from overheard.ingest.recheck import keep_days
    from overheard.ingest.reddit_stream import RedditStreams
    from overheard.ingest.x_stream import x_connector

    settings, stop = pipeline.settings, pipeline.stop
    connector: LiveConnector
    keep = keep_days(settings)  # posts older than any sink keeps text: not re-checked
    if settings.ingest.connector == "x":
        connector = x_connector(settings.x, pipeline.profile, stop, keep_days=keep)
    else:
        connector = RedditStreams.from_settings(settings.reddit, pipeline.profile, keep_days=keep)

    def run() -> None:
        cursors = CursorStore(settings.ingest.checkpoint_dir / "live.sqlite")
        producer = pipeline.bus.producer()
        try:
            feed_live(
                connector,
                producer,
                cursors,
                pipeline.topics,
                pipeline.summary,
                settings.retry,
                stop,
            )
        except Stopped:
            log.info("ingest stopped while retrying; its cursors were not advanced")
        finally:
            producer.close()
            cursors.close()

    return run


def _serve_health(pipeline: Pipeline) -> health.HealthServer | None:
    """Start the health endpoint when configured, with the bus among the readiness checks."""
    settings = pipeline.settings
    checks = health.readiness
    checks.mark("daemon", False, "starting")
    if settings.bus.kind == "kafka":
        probe = partial(reach_broker, settings, timeout_ms=5_000)
        checks.add("bus", health.cached(probe, settings.health.probe_every_s))
    if not settings.health.enabled:
        return None
    return health.HealthServer(settings.health.host, settings.health.port, checks).start()


def run_daemon(
    pipeline: Pipeline,
    stage: StageName,
    archives: Sequence[Path],
    reload: threading.Event | None = None,
) -> None:
    """Run the chosen stages until stopped (ingest alone ends when its archives do).

    Raises StageFailed when a stage died of an unexpected error (after stopping the
    rest), ShutdownTimedOut when the stages outlived the grace period after a stop.
    """
    server = _serve_health(pipeline)
    try:
        _run_stages(pipeline, stage, archives, reload or threading.Event())
    finally:
        if server is not None:
            server.close()


def _run_stages(
    pipeline: Pipeline, stage: StageName, archives: Sequence[Path], reload: threading.Event
) -> None:
    retry_transient(
        pipeline.bus.ensure_topics, pipeline.settings.retry, pipeline.stop, "creating topics"
    )
    checks = health.readiness
    work: dict[str, Callable[[], None]] = {}
    if stage in (StageName.ALL, StageName.INGEST):
        if pipeline.settings.ingest.connector != "archive":
            work["ingest"] = _live(pipeline)
        elif archives:
            work["ingest"] = _ingest(pipeline, archives)
    retry, stop = pipeline.settings.retry, pipeline.stop
    classify: ClassifyStage | None = None
    if stage in (StageName.ALL, StageName.CLASSIFY):
        runner = retry_transient(pipeline.classify_runner, retry, stop, "joining the bus")
        work["classify"] = _loop(runner, pipeline)
        classify = runner.stage if isinstance(runner.stage, ClassifyStage) else None
        profile = pipeline.profile.city
        checks.mark("classifier", True, f"{profile.display_name} {profile.version} loaded")
    sinks = pipeline.open_sinks() if stage in (StageName.ALL, StageName.SINK) else []
    if sinks:  # retention and platform deletions, daily (overheard/retention.py)
        Housekeeping(sinks, pipeline.settings, pipeline.stop).start()
    for sink in sinks:
        runner = retry_transient(
            partial(pipeline.sink_runner, sink), retry, stop, "joining the bus"
        )
        work[f"sink:{sink.name}"] = _loop(runner, pipeline)
        checks.mark(runner.stage.label, True, "open")
    failures: list[str] = []
    # Daemon threads: past the grace period the process may exit without them.
    threads = [
        threading.Thread(target=guarded(name, fn, stop, failures), name=name, daemon=True)
        for name, fn in work.items()
    ]
    for thread in threads:
        thread.start()
    log.info("running %s", ", ".join(work) or "nothing")
    checks.mark("daemon", True, f"running {', '.join(work) or 'nothing'}")
    wait_for_stages(threads, pipeline, classify, reload)
    for sink in sinks:
        sink.close()
    if failures:
        raise StageFailed(f"stage(s) failed: {', '.join(failures)}")


def wait_for_stages(
    threads: Sequence[threading.Thread],
    pipeline: Pipeline,
    classify: ClassifyStage | None,
    reload: threading.Event,
) -> None:
    """Wait for the stages, reloading the profile on SIGHUP, within the grace after a stop."""
    grace = pipeline.settings.daemon.shutdown_grace_s
    deadline: float | None = None
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(timeout=0.2)
        if reload.is_set():
            reload.clear()
            reload_profile(pipeline, classify)
        if pipeline.stop.is_set() and deadline is None:
            health.readiness.mark("daemon", False, "stopping")
            deadline = time.monotonic() + grace
        if deadline is not None and time.monotonic() > deadline:
            alive = [thread.name for thread in threads if thread.is_alive()]
            raise ShutdownTimedOut(
                f"{', '.join(alive)} still busy {grace:g}s after the stop; "
                "their batches stay uncommitted and are redelivered"
            )
