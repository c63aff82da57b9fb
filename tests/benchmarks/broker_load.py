"""What the broker benchmarks share: a broker, real posts, `overheard run` and a paced feed.

The posts are real: the r/baltimore sample and, when `../shared/data` is present, the
labelled sets `cascade.py` mixes. Each post sent gets a fresh id (`<id>~<n>`), so every
one is new to the classifier's dedup and to the sink, and the send time is kept by id:
latency is the sink's `written_at` minus that time, both read from this machine's clock.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer

from overheard.errors import ConfigError
from overheard.ingest.archive import iter_archive
from overheard.model import Post, Provenance
from overheard.paths import CONFIG_DIR
from overheard.settings import load_settings
from tests.benchmarks.cascade import labelled_posts
from tests.support.kafka_broker import Broker, start_session_broker
from tests.support.overheard_daemon import committed

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"
CITY = "baltimore"


def real_posts(seed: int = 7) -> list[Post]:
    """The sample's posts and, when the shared data is there, the labelled sets' posts."""
    posts = [item for item, _ in iter_archive(SAMPLE) if isinstance(item, Post)]
    try:
        relevant, irrelevant = labelled_posts(load_settings().models.data_dir)
    except ConfigError:  # the shared labelled data is not beside the checkout
        relevant, irrelevant = [], []
    posts += relevant + irrelevant
    random.Random(seed).shuffle(posts)
    return posts


def fresh(post: Post, number: int) -> Post:
    """`post` as a new post: its own id, collected now."""
    now = datetime.now(UTC)
    provenance = Provenance(connector="bench", connector_version="0", collected_at=now)
    return post.model_copy(update={"id": f"{post.id}~{number}", "provenance": provenance})


@dataclass
class Feed:
    """Sends real posts to the posts topic, keeping each one's send time (epoch seconds)."""

    bootstrap: str
    topic: str
    posts: list[Post]
    sent_at: dict[str, float] = field(default_factory=dict)
    _count: int = 0

    def __post_init__(self) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=self.bootstrap.split(","), acks="all", linger_ms=5
        )

    def send(self, count: int) -> None:
        for _ in range(count):
            post = fresh(self.posts[self._count % len(self.posts)], self._count)
            self._count += 1
            self.sent_at[post.id] = time.time()
            self._producer.send(self.topic, post.to_bytes(), key=post.id.encode())

    def paced(self, rate: float, seconds: float, tick_s: float = 0.05) -> None:
        """Send `rate` posts a second for `seconds`, spread over ticks of `tick_s`."""
        started, first = time.monotonic(), self._count
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(rate * elapsed) + 1 - (self._count - first)
            if due > 0:
                self.send(due)
                self._producer.flush()
            time.sleep(tick_s)

    @property
    def count(self) -> int:
        return self._count

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()


@dataclass
class RunningDaemon:
    """`overheard run --stage all` on Kafka, writing issues to a SQLite file."""

    process: subprocess.Popen[bytes]
    database: Path
    prefix: str
    log: Path

    def rss_kib(self) -> int:
        """The process's resident set (VmRSS of /proc/PID/status), in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for process {self.process.pid}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def written(self) -> list[tuple[str, datetime]]:
        """(post id, written_at) of every issue in the sink's database."""
        if not self.database.exists():
            return []
        with sqlite3.connect(self.database) as db:
            try:
                rows = db.execute("SELECT post_id, written_at FROM issues").fetchall()
            except sqlite3.OperationalError:  # the sink has not created its tables yet
                return []
        return [(post_id, _utc(at)) for post_id, at in rows]

    def issue_count(self) -> int:
        if not self.database.exists():
            return 0
        with sqlite3.connect(self.database) as db:
            try:
                return int(db.execute("SELECT count(*) FROM issues").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@contextmanager
def broker() -> Iterator[Broker]:
    """The broker the tests would use (`OVERHEARD_KAFKA_BOOTSTRAP`, or one started here)."""
    started = start_session_broker()
    try:
        yield started
    finally:
        started.stop()


@contextmanager
def daemon(
    bootstrap: str, workdir: Path, prefix: str, extra_env: dict[str, str] | None = None
) -> Iterator[RunningDaemon]:
    """`overheard run --stage all` (classify and the SQL sink) with the checkout's models and
    gazetteer, stopped with SIGTERM at the end."""
    database = workdir / "issues.db"
    env = {
        **os.environ,
        "OVERHEARD_BUS__KIND": "kafka",
        "OVERHEARD_BUS__BOOTSTRAP_SERVERS": bootstrap,
        "OVERHEARD_BUS__TOPIC_PREFIX": prefix,
        "OVERHEARD_DATABASE__URL": f"sqlite:///{database}",
        "OVERHEARD_AUDIT__URL": f"sqlite:///{workdir / 'audit.db'}",
        "OVERHEARD_INGEST__CHECKPOINT_DIR": str(workdir / "checkpoints"),
        "OVERHEARD_PRIVACY__AUTHOR_KEY": "bench-key-not-a-secret",
        **(extra_env or {}),
    }
    log = workdir / "daemon.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "overheard", "run", "--stage", "all", "--log-format", "json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    running = RunningDaemon(process, database, prefix, log)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def posts_topic(prefix: str) -> str:
    return f"{prefix}.{CITY}.posts"


def wait_for_topic(bootstrap: str, topic: str, running: RunningDaemon) -> None:
    """Wait until the daemon created `topic` (sending first would auto-create it wrongly)."""

    def exists() -> bool:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
        try:
            return topic in admin.list_topics()
        finally:
            admin.close()

    wait_until(exists, 300, f"overheard run to create {topic}", running)


def group_committed(bootstrap: str, group: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        return committed(admin, group)
    finally:
        admin.close()


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, running: RunningDaemon
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if not running.alive():
            raise RuntimeError(f"overheard run exited while waiting for {what}:\n{running.tail()}")
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}:\n{running.tail()}")


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of `values` (share in 0..1)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]
