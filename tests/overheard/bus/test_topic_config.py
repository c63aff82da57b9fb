"""Topic settings applied on creation and checked on existing topics, on the real broker."""

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from overheard.bus import topic_config
from overheard.bus.base import Topics
from overheard.bus.kafka import KafkaBus
from overheard.errors import ConfigError
from overheard.settings import BusSettings


def make_bus(bootstrap: str, prefix: str, **bus: object) -> KafkaBus:
    settings = BusSettings.model_validate(
        {"kind": "kafka", "bootstrap_servers": bootstrap, "topic_prefix": prefix, **bus}
    )
    return KafkaBus(settings, Topics.for_city(settings.topic_prefix, "baltimore"))


def create(bootstrap: str, topics: list[NewTopic]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(topics, wait_for_metadata=True)
    finally:
        admin.close()


def overridden(bootstrap: str, topics: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Each topic's configs that differ from the broker's defaults."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        )["topic"]
    finally:
        admin.close()
    return {
        topic: {key: entry["value"] for key, entry in configs.items()}
        for topic, configs in described.items()
    }


@pytest.fixture
def prefix(kafka_topic_prefix: str) -> str:
    return kafka_topic_prefix.rstrip(".")


def test_created_topics_carry_min_insync_replicas_when_set(
    kafka_bootstrap: str, prefix: str
) -> None:
    bus = make_bus(kafka_bootstrap, prefix, min_insync_replicas=1)
    bus.ensure_topics()
    configs = overridden(kafka_bootstrap, bus.topics.all())
    assert {topic: c.get("min.insync.replicas") for topic, c in configs.items()} == {
        topic: "1" for topic in bus.topics.all()
    }


def test_created_topics_keep_the_broker_default_when_unset(
    kafka_bootstrap: str, prefix: str
) -> None:
    bus = make_bus(kafka_bootstrap, prefix)
    bus.ensure_topics()
    configs = overridden(kafka_bootstrap, bus.topics.all())
    assert all("min.insync.replicas" not in c for c in configs.values())
    bus.ensure_topics()  # and the check finds nothing to say on a second start


def test_fewer_partitions_than_configured_stop_the_start(kafka_bootstrap: str, prefix: str) -> None:
    bus = make_bus(kafka_bootstrap, prefix, partitions=3)
    create(kafka_bootstrap, [NewTopic(bus.topics.posts, 1, 1)])
    with pytest.raises(ConfigError) as raised:
        bus.ensure_topics()
    assert str(raised.value).startswith(
        f"topic {bus.topics.posts} has 1 partition(s), bus.partitions asks for 3: add partitions"
    )
    assert bus.topics.issues not in str(raised.value)  # created by ensure_topics, with 3


def test_more_partitions_than_configured_are_accepted(kafka_bootstrap: str, prefix: str) -> None:
    bus = make_bus(kafka_bootstrap, prefix, partitions=2)
    create(kafka_bootstrap, [NewTopic(bus.topics.posts, 4, 1)])
    bus.ensure_topics()


def test_fewer_replicas_than_configured_stop_the_start(kafka_bootstrap: str, prefix: str) -> None:
    bus = make_bus(kafka_bootstrap, prefix, partitions=1, replication_factor=2)
    create(kafka_bootstrap, [NewTopic(topic, 1, 1) for topic in bus.topics.all()])
    with pytest.raises(ConfigError) as raised:
        bus.ensure_topics()
    for topic in bus.topics.all():
        assert f"topic {topic} has replication factor 1, bus.replication_factor asks for 2" in str(
            raised.value
        )


def test_another_min_insync_replicas_stops_the_start(kafka_bootstrap: str, prefix: str) -> None:
    bus = make_bus(kafka_bootstrap, prefix, partitions=1, min_insync_replicas=1)
    create(
        kafka_bootstrap,
        [NewTopic(bus.topics.issues, 1, 1, topic_configs={"min.insync.replicas": "2"})],
    )
    with pytest.raises(ConfigError) as raised:
        bus.ensure_topics()
    assert str(raised.value).startswith(
        f"topic {bus.topics.issues} has min.insync.replicas=2, "
        "bus.min_insync_replicas asks for 1: kafka-configs.sh --alter"
    )


def test_describe_reads_what_the_cluster_has(kafka_bootstrap: str, prefix: str) -> None:
    topics = Topics.for_city(prefix, "baltimore")
    create(
        kafka_bootstrap,
        [NewTopic(topics.posts, 2, 1, topic_configs={"min.insync.replicas": "1"})],
    )
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        states = topic_config.describe(admin, topics.all())
    finally:
        admin.close()
    assert states == [topic_config.TopicState(topics.posts, 2, 1, 1)]


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValueError, match=r"must be at most bus.replication_factor \(2\)"):
        BusSettings(replication_factor=2, min_insync_replicas=3)
    assert BusSettings(replication_factor=3, min_insync_replicas=2).min_insync_replicas == 2


def test_topics_the_cluster_cannot_create_as_asked_are_a_config_error(
    kafka_bootstrap: str, prefix: str
) -> None:
    """One broker cannot hold three replicas: said once, not retried forever."""
    bus = make_bus(kafka_bootstrap, prefix, replication_factor=3, min_insync_replicas=2)
    with pytest.raises(ConfigError, match=r"Kafka refused to create .* replication factor 3, "):
        bus.ensure_topics()
