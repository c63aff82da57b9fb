"""A replay on the in-process bus spread over worker processes that read and classify.

Each worker (forked, so it shares what the main process loaded) reads every archive
with `ArchiveReader.share`: the archive cut into chunks of records, every `workers`-th
chunk its own, the other records read past undecoded. It classifies its posts and sends
back, per chunk, only what the main process needs: how many items the chunk sent, the
outcome counts, and the issues and dead letters with their place in the chunk. The main
process takes the chunks in archive order (chunk `n` from worker `n % workers`) and
replays them into the serial replay's bookkeeping: the same summary, the issues on the
issues topic at the same chunk boundaries, so the sinks, the report and the clusters get
what a one-process replay gives them, whatever the number of workers.

Posts neither cross a pipe nor get parsed twice; what crosses is one small message per
chunk and the issues. A worker classifies the posts of one chunk together, as the
serial classify stage does for a chunk of `checkpoint_every` posts.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from overheard.bus.base import Producer, Topics
from overheard.classify.decide import Classifier, TextScorer
from overheard.clusters import cluster_key
from overheard.deadletter import DeadLetter
from overheard.geo.city import locator_for
from overheard.ingest.archive import ArchiveReader, Position
from overheard.interrupt import Interruption
from overheard.model import Issue, Post
from overheard.profile import CityProfile
from overheard.replay_time import TimeWindow
from overheard.settings import Settings
from overheard.summary import Summary

log = logging.getLogger(__name__)

#: How long the workers get to end after SIGTERM before they are killed.
_GRACE_S = 5.0


class ReplayWorkerError(RuntimeError):
    """A worker failed (its traceback in the message) or died (killed, out of memory)."""


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(setting: int) -> int:
    """The workers a replay runs: the setting, or one per usable core when it is 0."""
    return setting if setting > 0 else usable_cores()


@dataclass
class Chunk:
    """What a worker made of one chunk of records."""

    number: int
    #: Items the serial replay would have sent: posts inside the window and dead letters.
    sent: int = 0
    posts: int = 0
    outside_window: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Issues and dead letters, in archive order, with their index among the items sent.
    notable: list[tuple[int, Issue | DeadLetter]] = field(default_factory=list)
    #: The position after the chunk's last record (None when it held no post).
    position: Position | None = None


@dataclass(frozen=True)
class _End:
    """A worker read the whole archive."""


@dataclass(frozen=True)
class _Failed:
    error: str


@dataclass(frozen=True)
class Job:
    """What every worker is given (through fork, never pickled)."""

    readers: Sequence[ArchiveReader]
    settings: Settings
    profile: CityProfile
    #: The trained models, loaded once before the fork (what `pipeline.text_models` gives).
    models: TextScorer | None
    window: TimeWindow | None
    workers: int
    #: Records a chunk holds.
    size: int
    #: Posts the classifier is given at once (the classify stage's batch).
    batch: int
    #: The main process: a worker whose parent is gone (killed) stops after its chunk.
    parent: int = field(default_factory=os.getpid)


def classify_chunk(
    classifier: Classifier,
    number: int,
    items: list[Post | DeadLetter],
    position: Position | None,
    job: Job,
) -> Chunk:
    """One chunk's posts classified, dead letters kept, posts outside the window counted."""
    chunk = Chunk(number, position=position)
    posts: list[Post] = []
    places: list[int] = []
    letters: list[tuple[int, Issue | DeadLetter]] = []
    for item in items:
        if isinstance(item, Post):
            if job.window is not None and item.created_at not in job.window:
                chunk.outside_window += 1
                continue
            posts.append(item)
            places.append(chunk.sent)
        else:
            letters.append((chunk.sent, item))
        chunk.sent += 1
    chunk.posts = len(posts)
    issues: list[tuple[int, Issue | DeadLetter]] = []
    for start in range(0, len(posts), job.batch):
        for offset, decision in enumerate(classifier.classify(posts[start : start + job.batch])):
            chunk.outcomes[decision.outcome] += 1
            if decision.issue is not None:
                issues.append((places[start + offset], decision.issue))
    chunk.notable = sorted(letters + issues, key=lambda placed: placed[0])
    return chunk


def _work(job: Job, index: int, out: Connection, inherited: Sequence[Connection]) -> None:
    """A worker's life: build the classifier, then send its chunks of every archive.

    `inherited` are the reading ends of the pipes the fork copied: closed at once, so
    that when the main process is gone a send fails rather than waiting for a reader."""
    # Ctrl-C reaches the whole process group: the main process decides, and ends the workers.
    # SIGINT was blocked across the fork (`Workers`): one sent meanwhile is dropped here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    for pipe in inherited:
        pipe.close()
    try:
        geo = job.settings.geo
        locator = locator_for(job.profile, geo.gazetteer_dir, geo) if geo.enabled else None
        classifier = Classifier(job.profile, locator, job.models)
        settle_garbage_collection()
        for reader in job.readers:
            for number, items, position in reader.share(job.size, job.workers, index):
                if os.getppid() != job.parent:
                    return
                out.send(classify_chunk(classifier, number, items, position, job))
            out.send(_End())
    except BrokenPipeError:
        return  # the main process is gone: nobody to tell
    except BaseException:
        out.send(_Failed(traceback.format_exc()))
    finally:
        out.close()


#: Allocations between two young-generation collections in a replay (Python's default: 700).
_GC_YOUNG = 10_000


def settle_garbage_collection() -> None:
    """What a replay loaded (models, vocabulary, gazetteer) lives as long as the process:
    frozen out of the collector's sight, so that the collections the posts' short lives
    cause do not walk it again and again, and rarer (measured: about a fifth of a worker's
    CPU time at 99% irrelevant posts went to the collector). Called by a worker once its
    classifier is built, and by a one-process replay once its stages are."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG, *gc.get_threshold()[1:])


class Workers:
    """The worker processes, and their chunks of each archive in archive order.

    With an `interruption`, a Ctrl-C ends the wait for a chunk with KeyboardInterrupt."""

    def __init__(self, job: Job, interruption: Interruption | None = None) -> None:
        self.job = job
        self._interruption = interruption
        self._processes: list[BaseProcess] = []
        self._pipes: list[Connection] = []
        try:
            for index in range(job.workers):
                self._start(index)
        except BaseException:
            self.close()
            raise

    def _start(self, index: int) -> None:
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        self._pipes.append(receive)
        process = context.Process(
            target=_work,
            args=(self.job, index, send, list(self._pipes)),
            name=f"replay-worker-{index}",
            daemon=True,
        )
        # Blocked until the worker ignores SIGINT: a Ctrl-C in between would otherwise
        # reach the worker while it still has the main process's handler.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
            self._processes.append(process)
        finally:
            send.close()
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def chunks(self) -> Iterator[Chunk]:
        """The next archive's chunks, in order, until every worker read all of it."""
        number = 0
        while True:
            index = number % self.job.workers
            message = self._receive(index)
            if isinstance(message, _End):
                break
            if not isinstance(message, Chunk) or message.number != number:
                raise ReplayWorkerError(
                    f"replay worker {index} sent {message!r}, not chunk {number}"
                )
            yield message
            number += 1
        # The archive has no chunk `number`: the other workers' next word is their end.
        for other in range(self.job.workers):
            if other != number % self.job.workers:
                message = self._receive(other)
                if not isinstance(message, _End):
                    raise ReplayWorkerError(f"replay worker {other} sent {message!r} past the end")

    def _receive(self, index: int) -> Chunk | _End:
        pipe, process = self._pipes[index], self._processes[index]
        wake = [] if self._interruption is None else [self._interruption.fileno()]
        wait([pipe, process.sentinel, *wake])
        if self._interruption is not None:
            self._interruption.check()
        if not pipe.poll():
            process.join()
            raise ReplayWorkerError(
                f"replay worker {index} (pid {process.pid}) died with exit code "
                f"{process.exitcode} before finishing"
            )
        try:
            message = pipe.recv()
        except EOFError as exc:
            process.join()
            raise ReplayWorkerError(
                f"replay worker {index} (pid {process.pid}) died with exit code "
                f"{process.exitcode} before finishing"
            ) from exc
        if isinstance(message, _Failed):
            raise ReplayWorkerError(f"replay worker {index} failed:\n{message.error}")
        return message  # type: ignore[no-any-return]

    def close(self) -> None:
        """End the workers (at once when they have not finished) and wait for them."""
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(_GRACE_S)
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in self._pipes:
            pipe.close()


class Merger:
    """Turns one archive's chunks, in order, into what the serial replay does: posts counted
    as read, issues and dead letters sent, and `chunk_done` after every `every` items sent
    (where the serial replay drains the stages), with the position reached."""

    def __init__(
        self,
        summary: Summary,
        producer: Producer,
        topics: Topics,
        every: int,
        chunk_done: Callable[[Position], None],
    ) -> None:
        self.summary = summary
        self.producer = producer
        self.topics = topics
        self.every = every
        self.chunk_done = chunk_done
        self._pending = 0
        self._position: Position | None = None

    def add(self, chunk: Chunk) -> None:
        if chunk.position is not None:
            self._position = chunk.position
        self.summary.read(chunk.posts)
        if chunk.outside_window:
            self.summary.outside_window(chunk.outside_window)
        issues = [item for _, item in chunk.notable if isinstance(item, Issue)]
        self.summary.tally(chunk.outcomes, issues)
        done = 0
        for place, item in chunk.notable:
            self._advance(place - done)
            self._send(item)
            self._advance(1)
            done = place + 1
        self._advance(chunk.sent - done)

    def finish(self) -> None:
        """The archive's last, partial, chunk."""
        if self._pending and self._position is not None:
            self._boundary()

    def _advance(self, count: int) -> None:
        while count:
            step = min(count, self.every - self._pending)
            self._pending += step
            count -= step
            if self._pending == self.every:
                self._boundary()

    def _boundary(self) -> None:
        self._pending = 0
        self.producer.flush()
        assert self._position is not None  # items were sent, so a position was reached
        self.chunk_done(self._position)

    def _send(self, item: Issue | DeadLetter) -> None:
        if isinstance(item, Issue):
            log.info(
                "issue %s from post %s: %s",
                item.id,
                item.post.id,
                item.category.name,
                extra={
                    "post_id": item.post.id,
                    "issue_id": str(item.id),
                    "outcome": "issue",
                    "category": item.category.name,
                },
            )
            self.producer.send(self.topics.issues, item, key=cluster_key(item).encode())
            return
        log.warning("dead letter from ingest at %s: %s", item.origin, item.reason)
        self.summary.dead_lettered(item)
        self.producer.send(
            self.topics.deadletters, item.original, key=item.key, headers=tuple(item.headers())
        )
