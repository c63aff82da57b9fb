"""The session's real services work: a Kafka round trip, PostgreSQL, a replicating cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import create_engine, text

from tests.support.kafka_broker import Broker, KafkaCluster

MESSAGES = [f"complaint {i}".encode() for i in range(10)]


def test_kafka_round_trip_through_a_consumer_group(
    kafka_broker: Broker, kafka_topic_prefix: str
) -> None:
    topic = f"{kafka_topic_prefix}round-trip"
    with _admin(kafka_broker.bootstrap) as admin:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    _produce(kafka_broker.bootstrap, topic, MESSAGES)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_broker.bootstrap,
        group_id=f"{kafka_topic_prefix}readers",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
    )
    try:
        received = _consume(consumer, len(MESSAGES), timeout_s=60)
    finally:
        consumer.close()

    assert received == MESSAGES
    assert kafka_broker.kind in {"kafka", "tansu", "external"}
    assert kafka_broker.durable == (kafka_broker.kind != "tansu")


@pytest.mark.durable_broker
def test_end_offset_counts_every_record_of_a_batch(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    topic = f"{kafka_topic_prefix}offsets"
    with _admin(kafka_bootstrap) as admin:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    _produce(kafka_bootstrap, topic, MESSAGES)

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        partition = TopicPartition(topic, 0)
        assert consumer.end_offsets([partition]) == {partition: len(MESSAGES)}
    finally:
        consumer.close()


def test_postgres_answers_a_query(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            version = connection.execute(text("select version()")).scalar_one()
    finally:
        engine.dispose()
    assert version.startswith("PostgreSQL ")


def test_three_node_cluster_keeps_three_replicas_in_sync_across_a_restart(
    kafka_cluster: KafkaCluster, kafka_topic_prefix: str
) -> None:
    topic = f"{kafka_topic_prefix}replicated"
    with _admin(kafka_cluster.bootstrap) as admin:
        admin.create_topics(
            {
                topic: {
                    "num_partitions": 1,
                    "replication_factor": 3,
                    "configs": {"min.insync.replicas": "2"},
                }
            }
        )
        _produce(kafka_cluster.bootstrap, topic, MESSAGES[:5])
        partition = _partition(admin, topic)
        assert sorted(partition["replica_nodes"]) == [0, 1, 2]
        _wait_for(lambda: sorted(_partition(admin, topic)["isr_nodes"]) == [0, 1, 2], "ISR of 3")

        leader = partition["leader_id"]
        kafka_cluster.stop_node(leader)
        survivors = [i for i in range(kafka_cluster.size) if i != leader]
        survivors_bootstrap = ",".join(kafka_cluster.node_bootstrap(i) for i in survivors)
        _produce(survivors_bootstrap, topic, MESSAGES[5:])  # acks=all with 2 of 3 in sync

        kafka_cluster.start_node(leader)
        _wait_for(lambda: sorted(_partition(admin, topic)["isr_nodes"]) == [0, 1, 2], "ISR of 3")


def _admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap)


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        futures = [producer.send(topic, value) for value in values]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=0)  # raises if the broker refused the record
    finally:
        producer.close()


def _consume(consumer: KafkaConsumer, count: int, timeout_s: float) -> list[bytes]:
    received: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(received) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            received += [record.value for record in records]
    return received


def _partition(admin: KafkaAdminClient, topic: str) -> dict[str, Any]:
    [description] = admin.describe_topics([topic])
    [partition] = description["partitions"]
    return partition


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s"
        time.sleep(0.5)
