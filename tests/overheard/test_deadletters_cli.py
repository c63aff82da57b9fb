"""`overheard deadletters list|show|replay`: the dead-letter topic read, shown, and re-driven.

Replaying is producing the original bytes again to the topic they came from;
replaying twice writes no issue twice, because the issue id is derived from
the city and the post, and the sinks write an issue once.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy
from typer.testing import CliRunner

from overheard import deadletters
from overheard.bus.base import Topics
from overheard.bus.kafka import KafkaBus
from overheard.bus.memory import MemoryBus
from overheard.cli import app
from overheard.deadletter import DeadLetter
from overheard.model import Issue
from overheard.pipeline import drain
from overheard.settings import BusSettings, RetrySettings
from overheard.sinks.base import Outcome, Rejected
from overheard.sinks.sql import SqlSink
from overheard.stages import SinkStage, StageRunner
from tests.factories import make_issue

FAST = RetrySettings(initial_s=0.001, max_s=0.01)


class RefusingFirstSql(SqlSink):
    """The SQL sink, refusing every issue until `fixed` (a mapping the operator corrects)."""

    name = "sql"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.fixed = False

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        if not self.fixed:
            return [Rejected("no service code mapped for pothole") for _ in issues]
        return super().write(issues)


def rows(url: str) -> list[uuid.UUID]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            ids = connection.scalars(sqlalchemy.text("SELECT id FROM issues"))
            return [uuid.UUID(str(i)) for i in ids]
    finally:
        engine.dispose()


def test_replaying_a_dead_letter_twice_writes_its_issue_once(tmp_path: Path) -> None:
    """On the in-process bus, with a real dead letter from the sink stage and SQLite."""
    topics = Topics.for_city("dl", "baltimore")
    bus = MemoryBus(topics)
    issue = make_issue("t3_dl1")
    producer = bus.producer()
    producer.send(topics.issues, issue.to_bytes(), key=str(issue.id).encode())
    producer.flush()
    url = f"sqlite:///{tmp_path}/overheard.db"
    sink = RefusingFirstSql(url)
    sink.open()
    runner = StageRunner.on(
        bus, SinkStage(sink, "dl.sink", FAST, threading.Event()), topics.issues, FAST,
        threading.Event(),
    )  # fmt: skip
    drain([runner], 10)
    (stored,) = deadletters.parse(deadletters.read_memory(bus))
    assert stored.letter.reason == "no service code mapped for pothole"
    assert stored.origin_topic == topics.issues

    sink.fixed = True
    for _ in range(2):
        (done,) = deadletters.replay([stored], bus.producer(), topics)
        assert done.topic == topics.issues
    drain([runner], 10)
    sink.close()

    replayed = bus.records(topics.issues)[1:]
    assert [r.value for r in replayed] == [issue.to_bytes(), issue.to_bytes()]
    assert rows(url) == [Issue.id_for("baltimore", issue.post.id)]


def invoke(*args: str, env: dict[str, str]) -> str:
    result = CliRunner().invoke(app, ["deadletters", *args], env={"COLUMNS": "250", **env})
    assert result.exit_code == 0, result.output
    return result.output


def test_list_show_and_replay_against_kafka(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = kafka_topic_prefix.rstrip(".")
    settings = BusSettings(
        kind="kafka", bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=1,
        session_timeout_ms=6000,
    )  # fmt: skip
    topics = Topics.for_city(prefix, "baltimore")
    bus = KafkaBus(settings, topics)
    bus.ensure_topics()
    issue = make_issue("t3_kdl")
    garbage = b"\xff\x00not a post"
    letters = [
        DeadLetter("sink", "no service code mapped for pothole", "SinkRejected",
                   f"{topics.issues}[0]@7", issue.to_bytes(), str(issue.id).encode()),
        DeadLetter("classify", "not JSON", "MalformedMessage", f"{topics.posts}[0]@3", garbage),
        DeadLetter("ingest", "no text column", "MalformedMessage", "feed.csv:12", b"a,b\n"),
    ]  # fmt: skip
    producer = bus.producer()
    for letter in letters:
        producer.send(topics.deadletters, letter.original, letter.key, tuple(letter.headers()))
    producer.flush()
    producer.close()
    env = {"OVERHEARD_BUS__TOPIC_PREFIX": prefix}
    common = ["--bootstrap", kafka_bootstrap]

    listed = [json.loads(line) for line in invoke("list", "--json", *common, env=env).splitlines()]
    assert [(r["id"], r["stage"], r["error"], r["origin"]) for r in listed] == [
        ("0:0", "sink", "SinkRejected", f"{topics.issues}[0]@7"),
        ("0:1", "classify", "MalformedMessage", f"{topics.posts}[0]@3"),
        ("0:2", "ingest", "MalformedMessage", "feed.csv:12"),
    ]
    assert listed[0]["reason"] == "no service code mapped for pothole"
    table = invoke("list", "--stage", "classify", *common, env=env)
    assert "1 dead letters" in table and "not JSON" in table

    shown = (
        CliRunner()
        .invoke(app, ["deadletters", "show", "0:1", "--raw", *common], env=env)
        .stdout_bytes
    )
    assert shown == garbage
    detail = invoke("show", "0:0", *common, env=env)
    assert "overheard.reason" in detail and "no service code mapped" in detail
    assert str(issue.id) in detail

    for _ in range(2):
        replayed = invoke("replay", "0:0", "0:2", *common, env=env)
        assert "replayed 1" in replayed
        assert "feed.csv:12 is not a topic" in replayed

    # The fixed sink consumes both copies: one row, under the issue's derived id.
    url = f"sqlite:///{tmp_path}/overheard.db"
    sink = SqlSink(url)
    sink.open()
    consumer = bus.consumer(topics.issues, f"{prefix}.sink.sql")
    runner = StageRunner(
        SinkStage(sink, f"{prefix}.sink.sql", FAST, threading.Event()), consumer,
        bus.producer(), topics.deadletters, FAST, threading.Event(),
    )  # fmt: skip
    consumed: list[int] = []
    for _ in range(60):
        consumed.append(runner.step(10, 1.0))
        if sum(consumed) >= 2:
            break
    runner.close()
    sink.close()
    assert sum(consumed) == 2
    assert rows(url) == [Issue.id_for("baltimore", issue.post.id)]


def test_replay_needs_ids_or_all_and_refuses_unknown_ids(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    env = {"OVERHEARD_BUS__TOPIC_PREFIX": kafka_topic_prefix.rstrip("."), "COLUMNS": "200"}
    runner = CliRunner()
    nothing = runner.invoke(app, ["deadletters", "replay", "--bootstrap", kafka_bootstrap], env=env)
    assert nothing.exit_code == 2
    unknown = runner.invoke(
        app, ["deadletters", "show", "0:99", "--bootstrap", kafka_bootstrap], env=env
    )
    assert unknown.exit_code == 2
    assert "no such dead letter" in unknown.output


@pytest.mark.parametrize("ids", [["0:0"], []])
def test_select_by_id_stage_and_error(ids: list[str]) -> None:
    topics = Topics.for_city("sel", "baltimore")
    bus = MemoryBus(topics)
    producer = bus.producer()
    for stage, error in (("classify", "MalformedMessage"), ("sink", "SinkRejected")):
        letter = DeadLetter(stage, "why", error, f"{topics.posts}[0]@1", b"{}")  # type: ignore[arg-type]
        producer.send(topics.deadletters, letter.original, None, tuple(letter.headers()))
    producer.flush()
    stored = deadletters.parse(deadletters.read_memory(bus))
    chosen = deadletters.select(stored, ids, stage="classify")
    assert [s.id for s in chosen] == ["0:0"]
    assert deadletters.select(stored, ids, error="SinkRejected") == ([] if ids else [stored[1]])
