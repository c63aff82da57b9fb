"""Fixtures for the real services the tests talk to: Kafka and PostgreSQL.

Each service starts the first time a test asks for it and stops when the session ends.
Where a service cannot be run here, the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from hypothesis import settings

from tests.support.kafka_broker import Broker, KafkaCluster, start_session_broker
from tests.support.postgres_server import fresh_schema, session_database
from tests.support.processes import ServiceUnavailable

# Speed is measured in benchmarks, never asserted in tests: no per-example deadline,
# which a loaded machine would turn into random failures.
settings.register_profile("overheard", deadline=None)
settings.load_profile("overheard")

NOT_DURABLE_REASON = "tansu keeps data in memory and misreports end offsets after batched produces"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the services they use, so `-m "not kafka"` and the like select them."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        uses_kafka = {"kafka_broker", "kafka_cluster", "kafka_node"} & set(fixtures)
        if uses_kafka or item.get_closest_marker("durable_broker") is not None:
            item.add_marker(pytest.mark.kafka)
        if "postgres_url" in fixtures:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    """The session's broker: `.bootstrap` ("127.0.0.1:PORT"), `.kind`, `.durable`."""
    try:
        broker = start_session_broker()
    except ServiceUnavailable as reason:
        pytest.skip(f"no Kafka broker: {reason}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture(autouse=True)
def _skip_unless_durable_broker(request: pytest.FixtureRequest) -> None:
    """Skip tests marked `durable_broker` when the session's broker is tansu."""
    if request.node.get_closest_marker("durable_broker") is None:
        return
    broker: Broker = request.getfixturevalue("kafka_broker")
    if not broker.durable:
        pytest.skip(NOT_DURABLE_REASON)


@pytest.fixture
def kafka_topic_prefix() -> str:
    """A prefix unique to this test, so tests sharing the broker never share a topic."""
    return f"t{uuid.uuid4().hex[:8]}."


def _own_cluster(size: int) -> Iterator[KafkaCluster]:
    try:
        cluster = KafkaCluster.start(size)
    except ServiceUnavailable as reason:
        pytest.skip(f"no Apache Kafka cluster: {reason}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kafka_cluster() -> Iterator[KafkaCluster]:
    """A fresh 3-node Apache Kafka cluster for this test alone (it may stop nodes).

    Takes about 15 s to start; skipped where Apache Kafka can't run (no java).
    """
    yield from _own_cluster(3)


@pytest.fixture
def kafka_node() -> Iterator[KafkaCluster]:
    """A single Apache Kafka node for this test alone, so stopping it disturbs no other test."""
    yield from _own_cluster(1)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh database for this session on a real PostgreSQL server."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(session_database())
        except ServiceUnavailable as reason:
            pytest.skip(str(reason))
        yield url


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL of the session database whose search_path is a new schema, for this test alone."""
    with fresh_schema(postgres_url) as url:
        yield url
