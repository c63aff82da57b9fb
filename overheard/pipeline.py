"""Assembling the stages from settings, and the two ways to drive them.

`feed_archive` is the archive connector's side of the bus: it sends posts and
advances the checkpoint only after the bus acknowledged them. `replay` runs
every stage in one process, interleaved in chunks, on the in-process bus.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from overheard import replay_kafka, replay_workers
from overheard.bus.base import Bus, Producer, Topics
from overheard.bus.memory import MemoryBus
from overheard.classify.decide import Classifier
from overheard.classify.encoder import SHIPPED as SHIPPED_ENCODER
from overheard.classify.encoder import Encoder
from overheard.classify.textmodels import EncoderOnly, TextModels, ensure_models
from overheard.clusters import Clusterer
from overheard.deadletter import DeadLetter
from overheard.errors import ModelError
from overheard.geo.city import gazetteer_path, locator_for
from overheard.geo.shapes import CityShape
from overheard.ingest.archive import ArchiveReader, Position, iter_archive
from overheard.ingest.checkpoint import CheckpointStore
from overheard.interrupt import Interruption
from overheard.model import Post
from overheard.profile import CityProfile, load_profile
from overheard.replay_time import Pacer, TimeWindow
from overheard.retry import retry_transient
from overheard.settings import ModelsSettings, Settings
from overheard.sinks.base import Sink
from overheard.sinks.registry import create_sink
from overheard.stages import ClassifyStage, SinkStage, StageRunner
from overheard.summary import Summary
from overheard.whereabouts import Whereabouts

log = logging.getLogger(__name__)


def topics_for(settings: Settings, profile: CityProfile) -> Topics:
    bus = settings.bus
    return Topics.for_city(
        bus.topic_prefix, profile.name, bus.posts_topic, bus.issues_topic, bus.deadletters_topic
    )


def make_bus(settings: Settings, topics: Topics) -> Bus:
    if settings.bus.kind == "kafka":
        from overheard.bus.kafka import KafkaBus

        return KafkaBus(settings.bus, topics)
    return MemoryBus(topics)


@dataclass
class Pipeline:
    """Everything a process needs to run any stage."""

    settings: Settings
    profile: CityProfile
    topics: Topics
    bus: Bus
    summary: Summary
    stop: threading.Event

    @classmethod
    def build(cls, settings: Settings, stop: threading.Event | None = None) -> Pipeline:
        profile = load_profile(settings.city)
        topics = topics_for(settings, profile)
        return cls(
            settings,
            profile,
            topics,
            make_bus(settings, topics),
            Summary(clusterer=Clusterer(profile.clusters)),
            stop or threading.Event(),
        )

    def open_sinks(self) -> list[Sink]:
        sinks = [create_sink(name, self.settings) for name in self.settings.sinks]
        for sink in sinks:
            retry_transient(sink.open, self.settings.retry, self.stop, f"opening sink {sink.name}")
        return sinks

    def group(self, stage: str) -> str:
        """Consumer group of a stage: `<prefix>.<city>.<stage>`, one per city and stage."""
        return f"{self.settings.bus.topic_prefix}.{self.profile.name}.{stage}"

    def classifier(self) -> Classifier:
        """The cascade for this city, locating with its gazetteer unless geo is off."""
        geo = self.settings.geo
        locator = locator_for(self.profile, geo.gazetteer_dir, geo) if geo.enabled else None
        return Classifier(self.profile, locator, text_models(self.settings.models))

    def classify_runner(self) -> StageRunner:
        stage = ClassifyStage(self.classifier(), self.topics.issues, self.group("classify"))
        return StageRunner.on(
            self.bus, stage, self.topics.posts, self.settings.retry, self.stop, self.summary
        )

    def sink_runner(self, sink: Sink) -> StageRunner:
        stage = SinkStage(sink, self.group(f"sink.{sink.name}"), self.settings.retry, self.stop)
        return StageRunner.on(
            self.bus, stage, self.topics.issues, self.settings.retry, self.stop, self.summary
        )


def text_models(settings: ModelsSettings) -> TextModels | EncoderOnly | None:
    """The trained models, loaded (or trained first) at start-up.

    Models that are there but broken, or absent when `required`, stop the start
    with a `ModelError`. Absent and impossible to train (no labelled data), the
    shipped encoder scores complaint, civic and the category alone (`EncoderOnly`), or
    with the encoder off the vocabulary decides alone; either is said once here and on every
    issue (`versions.classifier`)."""
    if not settings.enabled:
        return None
    directory = settings.directory
    present = directory.is_dir() and any(directory.iterdir())
    encoder = SHIPPED_ENCODER if settings.encoder else None
    try:
        if settings.train_if_missing:
            return ensure_models(directory, settings.data_dir, encoder)
        return TextModels.load(directory, encoder)
    except ModelError as exc:
        if present or settings.required:
            raise
        if encoder is None:
            log.warning("%s; the city profile's vocabulary decides alone", exc)
            return None
        log.warning(
            "%s; the shipped encoder scores complaint, civic and the category alone",
            exc,
        )
        return EncoderOnly(Encoder.load(encoder))


def feed_archive(
    pipeline: Pipeline,
    path: Path,
    producer: Producer,
    checkpoints: CheckpointStore | None = None,
    *,
    collected_at: datetime | None = None,
    on_chunk: Callable[[Position], None] | None = None,
    admit: Callable[[Post, Position], bool] | None = None,
) -> None:
    """Send an archive's posts to the bus, `checkpoint_every` at a time.

    After each chunk the producer is flushed (every post acknowledged), then the
    checkpoint advances: a crash in between re-sends at most one chunk, which
    the classify stage absorbs (the same post yields the same issue id).
    `on_chunk` is then given the position after the chunk. A post `admit` refuses
    (when given the post and the position after it) is not sent.
    """
    settings = pipeline.settings
    start = checkpoints.load(path) if checkpoints is not None else None
    every = settings.ingest.checkpoint_every
    position: Position | None = None
    pending = 0
    for item, position in iter_archive(path, start=start, collected_at=collected_at):
        if admit is not None and isinstance(item, Post) and not admit(item, position):
            continue
        _send(pipeline, producer, item)
        pending += 1
        if pending >= every:
            _commit_chunk(pipeline, producer, checkpoints, path, position)
            pending = 0
            if on_chunk is not None:
                on_chunk(position)
        if pipeline.stop.is_set():
            break
    if position is not None and pending:
        _commit_chunk(pipeline, producer, checkpoints, path, position)
        if on_chunk is not None:
            on_chunk(position)


def _send(pipeline: Pipeline, producer: Producer, item: Post | DeadLetter) -> None:
    topics = pipeline.topics
    if isinstance(item, Post):
        pipeline.summary.read()
        producer.send(topics.posts, item, key=item.id.encode())
    else:
        log.warning("dead letter from ingest at %s: %s", item.origin, item.reason)
        pipeline.summary.dead_lettered(item)
        producer.send(
            topics.deadletters, item.original, key=item.key, headers=tuple(item.headers())
        )


def _commit_chunk(
    pipeline: Pipeline,
    producer: Producer,
    checkpoints: CheckpointStore | None,
    path: Path,
    position: Position,
) -> None:
    retry_transient(producer.flush, pipeline.settings.retry, pipeline.stop, "sending posts")
    if checkpoints is not None:
        checkpoints.save(path, position)


def drain(
    runners: Sequence[StageRunner], batch_size: int, stop: threading.Event | None = None
) -> None:
    """Step each runner until its topic is empty (the in-process bus never waits), or until
    `stop` is set: a step is whole (its batch handled and committed), so stopping between
    steps leaves every sink consistent."""
    for runner in runners:
        while not (stop is not None and stop.is_set()) and runner.step(batch_size, 0.0):
            pass


def replay(
    pipeline: Pipeline,
    archives: Iterable[Path],
    *,
    collected_at: datetime | None = None,
    extra_sinks: Sequence[Sink] = (),
    on_progress: Callable[[Position], None] | None = None,
    window: TimeWindow | None = None,
    speed: float | None = None,
    workers: int | None = None,
) -> Summary:
    """Run every stage in this process over the archives; returns what happened.

    On the in-process bus the stages are interleaved, chunk by chunk; on Kafka they
    run as threads and the replay ends when every stage consumed its topic
    (`replay_kafka`), after which the replay's topics and groups are deleted.
    `extra_sinks` (already open) get every issue besides the configured sinks, as
    the report does; `on_progress` is told the archive position after each chunk.
    With geo on, the summary names the streets and neighbourhoods of located issues.
    Posts created outside `window` are skipped and counted; with `speed`, posts go out
    at that multiple of the pace they were written at (`replay_time.Pacer`), else as
    fast as the stages take them.

    On the in-process bus without `speed`, `workers` processes (default: the setting
    `[replay] workers`, 0 for one per usable core) read and classify shares of the
    archives (`replay_workers`), with the same outputs as one process; 1 runs it all here.

    Ctrl-C (SIGINT to the main thread) always ends the replay with KeyboardInterrupt
    (`interrupt.Interruption`). On the in-process bus, once the stages are built, it is
    acted on between chunks and between stage steps: the step in hand is finished and
    committed, nothing more is read or delivered, the workers are ended, the sinks closed.
    """
    settings = pipeline.settings
    in_process = isinstance(pipeline.bus, MemoryBus)
    processes = replay_workers.worker_count(settings.replay.workers if workers is None else workers)
    parallel = in_process and speed is None and processes > 1
    with Interruption(pipeline.stop) as interruption:
        retry_transient(
            pipeline.bus.ensure_topics, settings.retry, pipeline.stop, "creating topics"
        )
        geo = pipeline.settings.geo
        # Before any worker starts: a gazetteer missing or out of date is built once, here.
        gazetteer = gazetteer_path(pipeline.profile, geo.gazetteer_dir) if geo.enabled else None
        if gazetteer is not None:
            pipeline.summary.whereabouts = Whereabouts(CityShape.read(gazetteer))
        job = _worker_job(pipeline, archives, collected_at, window, processes) if parallel else None
        pool: replay_workers.Workers | None = None
        sinks: list[Sink] = []
        runners: list[StageRunner] = []
        producer = pipeline.bus.producer()
        try:
            if job is not None:
                interruption.defer()  # from here on: no fork is cut short
                pool = replay_workers.Workers(job, interruption)
            sinks = pipeline.open_sinks()
            runners = [
                *([] if pool is not None else [pipeline.classify_runner()]),
                *(pipeline.sink_runner(sink) for sink in [*sinks, *extra_sinks]),
            ]
            if in_process:
                interruption.defer()
            _run_replay(
                pipeline,
                archives,
                runners,
                producer,
                pool,
                collected_at,
                on_progress,
                window,
                speed,
            )
        finally:
            if pool is not None:
                pool.close()
            producer.close()
            for runner in runners:
                runner.close()
            for sink in sinks:
                sink.close()
            if not in_process:
                groups = [runner.stage.group for runner in runners]
                replay_kafka.delete(pipeline.settings.bus, pipeline.topics.all(), groups)
    return pipeline.summary


def _worker_job(
    pipeline: Pipeline,
    archives: Iterable[Path],
    collected_at: datetime | None,
    window: TimeWindow | None,
    processes: int,
) -> replay_workers.Job:
    """What the worker processes are given: each reader is made here, so that a file of no
    known format fails before any worker starts and every worker stamps posts with the
    same collection time."""
    settings = pipeline.settings
    readers = [ArchiveReader(path, collected_at=collected_at) for path in archives]
    return replay_workers.Job(
        readers=readers,
        settings=settings,
        profile=pipeline.profile,
        models=text_models(settings.models),
        window=window,
        workers=processes,
        size=settings.ingest.checkpoint_every,
        batch=settings.bus.batch_size,
    )


def _run_replay(
    pipeline: Pipeline,
    archives: Iterable[Path],
    runners: list[StageRunner],
    producer: Producer,
    pool: replay_workers.Workers | None,
    collected_at: datetime | None,
    on_progress: Callable[[Position], None] | None,
    window: TimeWindow | None,
    speed: float | None,
) -> None:
    batch = pipeline.settings.bus.batch_size
    in_process = isinstance(pipeline.bus, MemoryBus)
    if in_process:
        replay_workers.settle_garbage_collection()

    def chunk_done(position: Position) -> None:
        if in_process:
            drain(runners, batch, pipeline.stop)
            _release_delivered(pipeline)
        if on_progress is not None:
            on_progress(position)

    def deliver_sent(position: Position) -> None:
        """Before a paced wait: what was sent so far goes through, and progress shows it."""
        producer.flush()
        chunk_done(position)

    admit = _admission(pipeline, window, speed, deliver_sent)

    def feed() -> None:
        for path in archives:
            if pipeline.stop.is_set():
                return
            feed_archive(
                pipeline,
                path,
                producer,
                collected_at=collected_at,
                on_chunk=chunk_done,
                admit=admit,
            )

    def feed_from_workers(workers: replay_workers.Workers) -> None:
        every = pipeline.settings.ingest.checkpoint_every
        for _ in workers.job.readers:
            merger = replay_workers.Merger(
                pipeline.summary, producer, pipeline.topics, every, chunk_done
            )
            for chunk in workers.chunks():
                merger.add(chunk)
                if pipeline.stop.is_set():
                    return
            merger.finish()

    if pool is not None:
        feed_from_workers(pool)
        drain(runners, batch, pipeline.stop)
    elif in_process:
        feed()
        drain(runners, batch, pipeline.stop)
    else:
        sources = [pipeline.topics.posts] + [pipeline.topics.issues] * (len(runners) - 1)
        replay_kafka.run_threaded(
            pipeline.settings.bus, list(zip(runners, sources, strict=True)), feed, pipeline.stop
        )


def _release_delivered(pipeline: Pipeline) -> None:
    """Let the in-process bus forget the posts and issues every stage has committed, so a
    replay's memory stays flat however long the archives."""
    if isinstance(pipeline.bus, MemoryBus):
        pipeline.bus.release(pipeline.topics.posts)
        pipeline.bus.release(pipeline.topics.issues)


def _admission(
    pipeline: Pipeline,
    window: TimeWindow | None,
    speed: float | None,
    before_wait: Callable[[Position], None],
) -> Callable[[Post, Position], bool] | None:
    """What decides, post by post, whether a replay sends it (and when); `before_wait` is
    given the position of the post a paced replay is about to wait for."""
    if window is None and speed is None:
        return None
    waiting_for: list[Position] = []
    pacer = (
        Pacer(speed, sleep=pipeline.stop.wait, before_wait=lambda: before_wait(waiting_for[0]))
        if speed is not None
        else None
    )

    def admit(post: Post, position: Position) -> bool:
        if window is not None and post.created_at not in window:
            pipeline.summary.outside_window()
            return False
        if pacer is not None:
            waiting_for[:] = [position]
            pacer.pace(post.created_at)
        return True

    return admit
