"""The Kafka bus against a real broker that the test session starts."""

import threading
import time

import pytest
from kafka import KafkaAdminClient

from overheard.bus.base import Record, Topics
from overheard.bus.kafka import KafkaBus
from overheard.classify.decide import Classifier
from overheard.deadletter import DeadLetter
from overheard.model import Issue
from overheard.profile import load_profile
from overheard.retry import Stopped
from overheard.settings import BusSettings, RetrySettings
from overheard.stages import ClassifyStage, StageRunner
from tests.factories import post
from tests.support.kafka_broker import KafkaCluster

FAST = RetrySettings(initial_s=0.2, max_s=1.0)


def make_bus(bootstrap: str, prefix: str, partitions: int = 2) -> KafkaBus:
    settings = BusSettings(
        kind="kafka",
        bootstrap_servers=bootstrap,
        partitions=partitions,
        session_timeout_ms=6000,
        request_timeout_ms=5000,
        delivery_timeout_ms=10_000,
        topic_prefix=prefix.rstrip("."),
    )
    return KafkaBus(settings, Topics.for_city(settings.topic_prefix, "baltimore"))


def poll_until(consumer, count: int, deadline_s: float = 30) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + deadline_s
    while len(records) < count and time.monotonic() < deadline:
        records += consumer.poll(100, 0.5)
    return records


def test_ensure_topics_creates_the_city_topics(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    bus = make_bus(kafka_bootstrap, kafka_topic_prefix, partitions=3)
    bus.ensure_topics()
    bus.ensure_topics()  # idempotent
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = {d["name"]: d for d in admin.describe_topics(list(bus.topics.all()))}
    finally:
        admin.close()
    assert set(described) == set(bus.topics.all())
    assert all(len(d["partitions"]) == 3 for d in described.values())


@pytest.mark.durable_broker
def test_a_restarted_consumer_resumes_after_its_last_commit(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    bus = make_bus(kafka_bootstrap, kafka_topic_prefix)
    bus.ensure_topics()
    producer = bus.producer()
    for n in range(20):
        producer.send(
            bus.topics.posts, f"m{n}".encode(), key=f"k{n}".encode(), headers=(("h", b"v"),)
        )
    producer.flush()
    producer.close()

    first = bus.consumer(bus.topics.posts, "g1")
    seen = poll_until(first, 20)
    assert len(seen) == 20
    assert seen[0].headers == (("h", b"v"),)
    committed = [r for r in seen if r.value in {f"m{n}".encode() for n in range(10)}]
    first.commit(committed)
    first.close()

    second = bus.consumer(bus.topics.posts, "g1")
    rest = poll_until(second, 20, deadline_s=15)
    second.close()
    remaining = {r.value for r in rest}
    # Per partition, everything after the last committed record comes again, nothing before.
    expected = set()
    for partition in {r.partition for r in seen}:
        in_partition = [r for r in seen if r.partition == partition]
        done = [r.offset for r in committed if r.partition == partition]
        last = max(done) if done else -1
        expected |= {r.value for r in in_partition if r.offset > last}
    assert remaining == expected


def test_dead_letters_keep_original_bytes_and_context_in_headers(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    bus = make_bus(kafka_bootstrap, kafka_topic_prefix, partitions=1)
    bus.ensure_topics()
    letter = DeadLetter(
        stage="ingest",
        reason="not JSON: Expecting value",
        error="MalformedLine",
        origin="feed.jsonl:7",
        original=b"\xff{oops",
        key=b"k",
    )
    producer = bus.producer()
    producer.send(
        bus.topics.deadletters, letter.original, key=letter.key, headers=tuple(letter.headers())
    )
    producer.flush()
    consumer = bus.consumer(bus.topics.deadletters, "dl")
    (record,) = poll_until(consumer, 1)
    consumer.close()
    back = DeadLetter.from_record(record.key, record.value, list(record.headers))
    assert (back.stage, back.reason, back.error, back.origin, back.original) == (
        "ingest",
        "not JSON: Expecting value",
        "MalformedLine",
        "feed.jsonl:7",
        b"\xff{oops",
    )


def test_classify_waits_out_a_broker_outage_and_loses_nothing(
    kafka_node: KafkaCluster, kafka_topic_prefix: str
) -> None:
    """Broker down mid-stream: the stage retries with backoff, then finishes every post."""
    bus = make_bus(kafka_node.bootstrap, kafka_topic_prefix, partitions=1)
    bus.ensure_topics()
    posts = [post(f"pothole on Eastern Ave number {n}", f"t3_p{n}") for n in range(30)]
    producer = bus.producer()
    for item in posts:
        producer.send(bus.topics.posts, item.to_bytes(), key=item.id.encode())
    producer.flush()
    producer.close()

    stop = threading.Event()
    classifier = Classifier(load_profile("baltimore"))
    runner = StageRunner.on(
        bus, ClassifyStage(classifier, bus.topics.issues, "classify"), bus.topics.posts, FAST, stop
    )
    assert runner.step(10, 10) > 0  # joined the group and handled a first batch

    kafka_node.stop_node(0)
    worker = threading.Thread(target=_run_quietly, args=(runner, stop), daemon=True)
    worker.start()
    time.sleep(3)  # the stage is now retrying against a dead broker
    kafka_node.start_node(0)

    reader = bus.consumer(bus.topics.issues, "check")
    expected = {Issue.id_for("baltimore", p.id) for p in posts}
    found: set = set()
    deadline = time.monotonic() + 120
    while found != expected and time.monotonic() < deadline:
        found |= {Issue.from_bytes(r.value).id for r in reader.poll(100, 1.0)}
    stop.set()
    worker.join(timeout=60)
    reader.close()
    assert found == expected
    assert not worker.is_alive()


def _run_quietly(runner: StageRunner, stop: threading.Event) -> None:
    try:
        runner.run(10, 0.5)
    except Stopped:
        pass
    finally:
        runner.close()


def test_a_message_sent_as_an_object_travels_as_its_bytes(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    bus = make_bus(kafka_bootstrap, kafka_topic_prefix, partitions=1)
    bus.ensure_topics()
    sent = post("Huge pothole on Eastern Ave again", "t3_kobj")
    producer = bus.producer()
    producer.send(bus.topics.posts, sent, key=sent.id.encode())
    producer.flush()
    producer.close()
    consumer = bus.consumer(bus.topics.posts, "objects")
    (record,) = poll_until(consumer, 1)
    consumer.close()
    assert (record.message, record.value, record.key) == (None, sent.to_bytes(), b"reddit:t3_kobj")
