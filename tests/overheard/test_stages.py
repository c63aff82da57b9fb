"""The stage runtime on the in-process bus: commit discipline, dead letters, retries."""

import threading
from collections.abc import Sequence

import pytest

from overheard.bus.base import Payload, Topics
from overheard.bus.memory import MemoryBus
from overheard.classify.decide import Classifier
from overheard.deadletter import DeadLetter
from overheard.errors import TransientError
from overheard.model import Issue
from overheard.profile import load_profile
from overheard.settings import RetrySettings
from overheard.sinks.base import WRITTEN, BaseSink, Outcome, Rejected, Retry
from overheard.sinks.sql import SqlSink
from overheard.stages import ClassifyStage, SinkStage, StageRunner
from overheard.summary import Summary
from tests.factories import make_issue, post

FAST = RetrySettings(initial_s=0.001, max_s=0.01)
TOPICS = Topics.for_city("test", "baltimore")


class ScriptedSink(BaseSink):
    """A sink whose answers the test scripts: the contract as an integrator implements it."""

    name = "scripted"

    def __init__(self, script: list[object] | None = None) -> None:
        self.script = list(script or [])
        self.rows: dict[str, Issue] = {}
        self.calls = 0

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        self.calls += 1
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return [step(issue) for issue in issues]  # type: ignore[operator]
        for issue in issues:
            self.rows[str(issue.id)] = issue
        return [WRITTEN for _ in issues]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_profile("baltimore"))


def runner_for(bus: MemoryBus, stage, topic: str, summary: Summary | None = None) -> StageRunner:
    return StageRunner.on(bus, stage, topic, FAST, threading.Event(), summary)


def publish(bus: MemoryBus, topic: str, *values: Payload) -> None:
    producer = bus.producer()
    for value in values:
        producer.send(topic, value)
    producer.flush()


def test_classify_emits_issues_and_dead_letters_bad_posts(classifier: Classifier) -> None:
    bus = MemoryBus(TOPICS)
    summary = Summary()
    good = post("Huge pothole on Eastern Ave again", "t3_a1")
    quiet = post("Orioles win!", "t3_a2")
    publish(bus, TOPICS.posts, good.to_bytes(), b"{broken", quiet.to_bytes())
    runner = runner_for(
        bus, ClassifyStage(classifier, TOPICS.issues, "classify"), TOPICS.posts, summary
    )
    assert runner.step(100, 0) == 3
    (issue,) = [Issue.from_bytes(r.value) for r in bus.records(TOPICS.issues)]
    assert issue.id == Issue.id_for("baltimore", good.id)
    (letter_record,) = bus.records(TOPICS.deadletters)
    letter = DeadLetter.from_record(letter_record.key, letter_record.value, letter_record.headers)
    assert letter.original == b"{broken"
    assert (letter.stage, letter.error) == ("classify", "MalformedMessage")
    assert letter.origin == f"{TOPICS.posts}[0]@1"
    assert summary.as_dict()["issues"] == 1
    assert runner.consumer.lag() == 0


def test_sink_stage_dead_letters_rejections_and_retries_the_rest(
    classifier: Classifier,
) -> None:
    bus = MemoryBus(TOPICS)
    issues = [
        classifier.classify([post(f"graffiti on Fleet St #{n}", f"t3_g{n}")])[0].issue
        for n in range(3)
    ]
    publish(bus, TOPICS.issues, *(i.to_bytes() for i in issues))
    bad_id = issues[1].id
    sink = ScriptedSink(
        [
            TransientError("database down"),
            lambda i: Rejected("unknown service_code") if i.id == bad_id else Retry("busy", 0.0),
        ]
    )
    summary = Summary()
    runner = runner_for(
        bus, SinkStage(sink, "sink", FAST, threading.Event()), TOPICS.issues, summary
    )
    runner.step(100, 0)
    assert sink.calls == 3  # down, then one rejected + two to retry, then the two written
    assert set(sink.rows) == {str(issues[0].id), str(issues[2].id)}
    (letter_record,) = bus.records(TOPICS.deadletters)
    letter = DeadLetter.from_record(letter_record.key, letter_record.value, letter_record.headers)
    assert letter.reason == "unknown service_code"
    assert letter.error == "SinkRejected"
    assert Issue.from_bytes(letter.original).id == bad_id
    assert summary.as_dict()["issues_written"] == {"scripted": 2}


def test_nothing_is_committed_until_the_results_are_acknowledged(
    classifier: Classifier,
) -> None:
    """A failed flush leaves the batch uncommitted; the retry sends it again, then commits."""
    bus = MemoryBus(TOPICS)
    publish(bus, TOPICS.posts, post("rats everywhere in our alley", "t3_r1").to_bytes())
    failures = [TransientError("broker down")]
    producer = bus.producer()
    original_flush = producer.flush

    def flaky_flush() -> None:
        if failures:
            raise failures.pop()
        original_flush()

    producer.flush = flaky_flush  # type: ignore[method-assign]
    consumer = bus.consumer(TOPICS.posts, "g")
    committed: list[int] = []
    original_commit = consumer.commit
    consumer.commit = lambda records: (committed.append(len(records)), original_commit(records))
    runner = StageRunner(
        ClassifyStage(classifier, TOPICS.issues, "classify"),
        consumer,
        producer,
        TOPICS.deadletters,
        FAST,
        threading.Event(),
    )
    runner.step(10, 0)
    assert committed == [1]
    issue_ids = {Issue.from_bytes(r.value).id for r in bus.records(TOPICS.issues)}
    assert len(issue_ids) == 1  # sent twice at most, always the same issue
    assert bus.consumer(TOPICS.posts, "g").lag() == 0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/overheard.db"
    return request.getfixturevalue("postgres_schema_url")


def test_a_row_the_database_refuses_is_dead_lettered_and_the_rest_written(
    database_url: str,
) -> None:
    bus = MemoryBus(TOPICS)
    good = [make_issue(f"t3_ok{n}") for n in range(3)]
    refused = make_issue("t3_bad", category="x" * 200)  # longer than the column allows
    publish(
        bus,
        TOPICS.issues,
        good[0].to_bytes(),
        refused.to_bytes(),
        *(i.to_bytes() for i in good[1:]),
    )
    sink = SqlSink(database_url)
    sink.open()
    summary = Summary()
    runner = runner_for(
        bus, SinkStage(sink, "sink", FAST, threading.Event()), TOPICS.issues, summary
    )
    assert runner.step(100, 0) == 4
    runner.step(100, 0)  # nothing left: the batch was committed
    assert runner.consumer.lag() == 0
    (record,) = bus.records(TOPICS.deadletters)
    letter = DeadLetter.from_record(record.key, record.value, record.headers)
    assert letter.stage == "sink"
    assert letter.error == "SinkRejected"
    assert "database refused" in letter.reason
    assert letter.original == refused.to_bytes()
    assert sink.count_issues("baltimore") == 3
    sink.close()
    assert summary.as_dict()["issues_written"] == {"sql": 3}


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{broken", "MalformedMessage"),
        (b'{"schema_version": 99, "id": "reddit:t3_x"}', "UnsupportedSchemaVersion"),
        (b'{"schema_version": 1, "id": "myspace:1", "platform": "myspace"}', "MalformedMessage"),
    ],
)
def test_every_unreadable_post_is_dead_lettered_with_its_bytes(
    classifier: Classifier, raw: bytes, error: str
) -> None:
    bus = MemoryBus(TOPICS)
    publish(bus, TOPICS.posts, raw)
    runner = runner_for(bus, ClassifyStage(classifier, TOPICS.issues, "classify"), TOPICS.posts)
    runner.step(10, 0)
    (record,) = bus.records(TOPICS.deadletters)
    letter = DeadLetter.from_record(record.key, record.value, record.headers)
    assert (letter.stage, letter.error, letter.original) == ("classify", error, raw)
    assert runner.consumer.lag() == 0


def test_on_the_in_process_bus_posts_and_issues_pass_as_objects_with_the_same_results(
    classifier: Classifier,
) -> None:
    """The stages use what the bus carried instead of decoding it, and give what the same
    messages sent as bytes give; a rejected issue's dead letter still holds its bytes."""
    posts = [post(f"Huge pothole on Eastern Ave #{n}", f"t3_o{n}") for n in range(3)]
    results = {}
    for carried in (True, False):
        bus = MemoryBus(TOPICS)
        publish(bus, TOPICS.posts, *(p if carried else p.to_bytes() for p in posts))
        runner_for(bus, ClassifyStage(classifier, TOPICS.issues, "classify"), TOPICS.posts).step(
            100, 0
        )
        records = bus.records(TOPICS.issues)
        if carried:
            assert [r.message.post for r in records] == posts  # type: ignore[union-attr]
            assert all(r.message.post is p for r, p in zip(records, posts, strict=True))  # type: ignore[union-attr]
        rejected = posts[1].id
        sink = ScriptedSink(
            [lambda i: Rejected("no") if i.post.id == rejected else WRITTEN]  # noqa: B023
        )
        runner_for(bus, SinkStage(sink, "sink", FAST, threading.Event()), TOPICS.issues).step(
            100, 0
        )
        (letter,) = bus.records(TOPICS.deadletters)
        results[carried] = ([r.value for r in records], [r.key for r in records], letter.value)
    assert results[True] == results[False]
    assert Issue.from_bytes(results[True][2]).post.id == posts[1].id


def test_an_object_of_another_kind_is_read_from_its_bytes(classifier: Classifier) -> None:
    """A stage trusts a carried object only when it is what the topic should hold."""
    bus = MemoryBus(TOPICS)
    issue = make_issue("t3_wrongtopic")
    publish(bus, TOPICS.posts, issue)
    runner_for(bus, ClassifyStage(classifier, TOPICS.issues, "classify"), TOPICS.posts).step(10, 0)
    (record,) = bus.records(TOPICS.deadletters)
    letter = DeadLetter.from_record(record.key, record.value, record.headers)
    assert (letter.error, letter.original) == ("MalformedMessage", issue.to_bytes())
