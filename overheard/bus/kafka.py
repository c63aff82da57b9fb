"""The Kafka bus, through kafka-python: idempotent producer with acks=all, manual commits."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    CommitFailedError,
    InvalidConfigurationError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    KafkaError,
    PolicyViolationError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import OffsetAndMetadata

from overheard.bus import topic_config
from overheard.bus.base import Headers, Payload, Record, Topics, encoded
from overheard.errors import ConfigError, Rebalanced, TransientError
from overheard.settings import BusSettings

log = logging.getLogger(__name__)

#: What the cluster answers to topics it will never create as asked: a setting to fix,
#: not a failure to retry.
REFUSALS = (
    InvalidReplicationFactorError,
    InvalidPartitionsError,
    InvalidConfigurationError,
    PolicyViolationError,
    TopicAuthorizationFailedError,
)


def connection_options(settings: BusSettings) -> dict[str, Any]:
    """What every kafka-python client needs to reach the cluster (secrets unwrapped here only)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


class KafkaBus:
    def __init__(self, settings: BusSettings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics

    def ensure_topics(self) -> None:
        """Create missing topics; refuse to run on existing ones that fall short of the config.

        Raises ConfigError naming every topic that differs (`overheard.bus.topic_config`).
        """
        admin = self.admin()
        try:
            existing = set(admin.list_topics())
            missing = [topic for topic in self.topics.all() if topic not in existing]
            if missing:
                new = [
                    NewTopic(
                        topic,
                        self.settings.partitions,
                        self.settings.replication_factor,
                        topic_configs=self.topic_configs(),
                    )
                    for topic in missing
                ]
                try:
                    admin.create_topics(new, wait_for_metadata=True)
                except TopicAlreadyExistsError:
                    log.info("topics created concurrently by another process: %s", missing)
                except REFUSALS as exc:
                    configs = "".join(f", {k}={v}" for k, v in self.topic_configs().items())
                    raise ConfigError(
                        f"Kafka refused to create {', '.join(missing)} with "
                        f"{self.settings.partitions} partition(s), replication factor "
                        f"{self.settings.replication_factor}{configs}: {exc}"
                    ) from exc
            found = [
                problem
                for state in topic_config.describe(admin, self.topics.all())
                for problem in topic_config.problems(state, self.settings)
            ]
        except KafkaError as exc:
            raise TransientError(f"could not create or describe the topics: {exc}") from exc
        finally:
            admin.close()
        if found:
            raise ConfigError("; ".join(found))

    def topic_configs(self) -> dict[str, str]:
        """The topic-level configs overheard sets on the topics it creates."""
        wanted = self.settings.min_insync_replicas
        return {} if wanted is None else {topic_config.MIN_INSYNC: str(wanted)}

    def admin(self) -> KafkaAdminClient:
        try:
            return KafkaAdminClient(**connection_options(self.settings))
        except KafkaError as exc:
            raise TransientError(
                f"cannot reach Kafka at {self.settings.bootstrap_servers}: {exc}"
            ) from exc

    def producer(self) -> KafkaBusProducer:
        try:
            return KafkaBusProducer(self.settings)
        except KafkaError as exc:
            raise TransientError(
                f"cannot reach Kafka at {self.settings.bootstrap_servers}: {exc}"
            ) from exc

    def consumer(self, topic: str, group: str) -> KafkaBusConsumer:
        try:
            return KafkaBusConsumer(self.settings, topic, group)
        except KafkaError as exc:
            raise TransientError(
                f"cannot reach Kafka at {self.settings.bootstrap_servers}: {exc}"
            ) from exc


class KafkaBusProducer:
    def __init__(self, settings: BusSettings) -> None:
        self._producer = KafkaProducer(
            **connection_options(settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            retries=2**31 - 1,
            request_timeout_ms=settings.request_timeout_ms,
            delivery_timeout_ms=settings.delivery_timeout_ms,
        )
        self._flush_timeout_s = settings.delivery_timeout_ms / 1000 + 5
        self._futures: list[FutureRecordMetadata] = []

    def send(
        self, topic: str, value: Payload, key: bytes | None = None, headers: Headers = ()
    ) -> None:
        self._futures.append(
            self._producer.send(topic, value=encoded(value), key=key, headers=list(headers))
        )

    def flush(self) -> None:
        futures, self._futures = self._futures, []
        try:
            self._producer.flush(timeout=self._flush_timeout_s)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            raise TransientError(f"Kafka did not acknowledge every message: {exc}") from exc

    def close(self) -> None:
        self._producer.close()


class KafkaBusConsumer:
    def __init__(self, settings: BusSettings, topic: str, group: str) -> None:
        self._consumer = KafkaConsumer(
            topic,
            **connection_options(settings),
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.session_timeout_ms,
            request_timeout_ms=max(settings.request_timeout_ms, settings.session_timeout_ms + 1000),
            heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 3),
        )

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        records = [
            Record(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
                headers=tuple((name, value or b"") for name, value in message.headers or ()),
                timestamp_ms=message.timestamp,
            )
            for partition_records in batches.values()
            for message in partition_records
        ]
        records.sort(key=lambda record: (record.partition, record.offset))
        return records

    def commit(self, records: Sequence[Record]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            current = offsets.get(partition)
            if current is None or current.offset <= record.offset:
                offsets[partition] = OffsetAndMetadata(record.offset + 1, "", -1)
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except CommitFailedError as exc:
            raise Rebalanced(str(exc)) from exc
        except KafkaError as exc:
            raise TransientError(f"could not commit offsets: {exc}") from exc

    def lag(self) -> int:
        return sum(self.lag_by_partition().values())

    def lag_by_partition(self, timeout_ms: int = 2000) -> dict[tuple[str, int], int]:
        """Raises TransientError when the broker does not answer within `timeout_ms`."""
        assigned = self._consumer.assignment()
        if not assigned:
            return {}
        try:
            ends = self._consumer.end_offsets(list(assigned), timeout_ms=timeout_ms)
            return {
                (tp.topic, tp.partition): max(
                    0, ends[tp] - self._consumer.position(tp, timeout_ms=timeout_ms)
                )
                for tp in assigned
            }
        except KafkaError as exc:
            raise TransientError(f"could not read the lag: {exc}") from exc

    def close(self) -> None:
        self._consumer.close(autocommit=False)
