"""The whole path on real services: archive → posts → classify → issues → SQL sink in PostgreSQL.

The stages run as separate `overheard run` processes against the session's Kafka
broker, and are killed (SIGKILL, no chance to clean up) mid-stream and restarted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from overheard.classify.decide import Classifier
from overheard.geo.city import locator_for
from overheard.ingest import iter_archive
from overheard.model import Issue, Post
from overheard.paths import CONFIG_DIR
from overheard.profile import load_profile

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"


def expected_issue_ids(gazetteers: Path) -> set[uuid.UUID]:
    posts = [item for item, _ in iter_archive(SAMPLE) if isinstance(item, Post)]
    profile = load_profile("baltimore")
    decisions = Classifier(profile, locator_for(profile, gazetteers)).classify(posts)
    return {d.issue.id for d in decisions if d.issue is not None}


class Stages:
    """Starts `overheard run --stage …` processes with one shared environment."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        name = "-".join(a.lstrip("-") for a in args if not a.endswith(".csv"))
        log = (self.logs / f"{name}-{len(self.running)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "overheard", "run", "--log-level", "INFO", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.running.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.kill()
                process.wait()

    def tail(self) -> str:
        return "\n".join(
            f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:]
            for path in sorted(self.logs.glob("*.log"))
        )


def wait_for(
    condition: Callable[[], bool], what: str, stages: Stages, timeout_s: float = 120
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{stages.tail()}")


@pytest.fixture
def stages(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Stages]]:
    made: list[Stages] = []

    def make(env: dict[str, str]) -> Stages:
        made.append(Stages({**os.environ, **env}, tmp_path))
        return made[-1]

    yield make
    for each in made:
        each.stop_all()


@pytest.mark.durable_broker
def test_killed_consumers_leave_every_issue_exactly_once(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    postgres_schema_url: str,
    tmp_path: Path,
    stages: Callable[[dict[str, str]], Stages],
) -> None:
    prefix = kafka_topic_prefix.rstrip(".")
    env = {
        "OVERHEARD_BUS__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "OVERHEARD_BUS__TOPIC_PREFIX": prefix,
        "OVERHEARD_BUS__PARTITIONS": "2",
        "OVERHEARD_BUS__BATCH_SIZE": "5",
        "OVERHEARD_BUS__SESSION_TIMEOUT_MS": "6000",
        "OVERHEARD_DATABASE__URL": postgres_schema_url,
        "OVERHEARD_INGEST__CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "OVERHEARD_INGEST__CHECKPOINT_EVERY": "100",
        "OVERHEARD_GEO__GAZETTEER_DIR": str(tmp_path / "gazetteer"),
        # Delivery is under test, not judgement: the vocabulary alone decides, as in
        # `expected_issue_ids`, whatever models the checkout has trained.
        "OVERHEARD_MODELS__ENABLED": "false",
    }
    run = stages(env)
    expected = expected_issue_ids(tmp_path / "gazetteer")
    assert len(expected) >= 5
    engine = sqlalchemy.create_engine(postgres_schema_url)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)

    def rows() -> list[uuid.UUID]:
        try:
            with engine.connect() as connection:
                return list(connection.scalars(sqlalchemy.text("SELECT id FROM issues")))
        except sqlalchemy.exc.ProgrammingError:  # the sink has not created the table yet
            return []

    def end_offset(topic: str) -> int:
        reader = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
        try:
            partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic)]
            return sum(reader.end_offsets(partitions).values())
        finally:
            reader.close()

    def committed(stage: str) -> int:
        group = f"{prefix}.baltimore.{stage}"
        try:
            offsets = admin.list_group_offsets(group).get(group, {})
        except KafkaError:  # no coordinator yet: nothing committed
            return 0
        return sum(max(0, meta.offset) for meta in offsets.values())

    try:
        ingest = run.start("--stage", "ingest", "--archive", str(SAMPLE))
        assert ingest.wait(timeout=120) == 0, run.tail()

        classify = run.start("--stage", "classify")
        sink = run.start("--stage", "sink")
        wait_for(lambda: 0 < committed("classify") < 1000 and rows(), "a stage mid-stream", run)
        classify.kill()
        sink.kill()
        classify.wait()
        sink.wait()
        at_kill = committed("classify")
        assert at_kill < 1000, "classify had finished before it was killed"

        run.start("--stage", "classify")
        run.start("--stage", "sink")
        wait_for(
            lambda: committed("classify") == 1000 and len(rows()) >= len(expected),
            "every post classified and every issue written",
            run,
        )
        wait_for(
            lambda: committed("sink.sql") == end_offset(f"{prefix}.baltimore.issues"),
            "the sink to consume every issue message, duplicates included",
            run,
        )
        stored = rows()
    finally:
        admin.close()
    for process in run.running[-2:]:
        process.send_signal(signal.SIGTERM)
    for process in run.running[-2:]:
        assert process.wait(timeout=60) == 0, run.tail()
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected
    with engine.connect() as connection:
        payloads = connection.scalars(sqlalchemy.text("SELECT issue FROM issues")).all()
    engine.dispose()
    assert all(Issue.model_validate(p).city == "baltimore" for p in payloads)
