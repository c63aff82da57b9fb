"""The bus contract: what stages need of Kafka, and what the in-process bus provides too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Record:
    """A message read from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()
    #: When the message entered the bus (epoch milliseconds), where the bus says.
    timestamp_ms: int | None = None

    @property
    def origin(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Topics:
    """The three topics of one city: `<prefix>.<city>.<name>`."""

    posts: str
    issues: str
    deadletters: str

    @classmethod
    def for_city(
        cls,
        prefix: str,
        city: str,
        posts: str = "posts",
        issues: str = "issues",
        deadletters: str = "deadletters",
    ) -> Topics:
        return cls(*(f"{prefix}.{city}.{name}" for name in (posts, issues, deadletters)))

    def all(self) -> tuple[str, str, str]:
        return (self.posts, self.issues, self.deadletters)


class Producer(Protocol):
    def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers = ()
    ) -> None:
        """Queue a message; `flush` says whether it was acknowledged."""

    def flush(self) -> None:
        """Block until every queued message is acknowledged by all in-sync replicas.

        Raises TransientError when any was not: nothing may then be committed.
        """

    def close(self) -> None: ...


class Consumer(Protocol):
    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to `max_records` messages, waiting at most `timeout_s` for the first."""
        ...

    def commit(self, records: Sequence[Record]) -> None:
        """Mark these records (and everything before them in their partitions) as done.

        Raises TransientError when the bus cannot be reached, Rebalanced when the
        partitions now belong to another consumer.
        """

    def lag(self) -> int:
        """Messages in the subscribed topic not yet consumed by this consumer."""
        ...

    def lag_by_partition(self) -> dict[tuple[str, int], int]:
        """`lag` for each assigned partition, keyed by (topic, partition).

        Raises TransientError when the bus cannot be reached.
        """
        ...

    def close(self) -> None: ...


class Bus(Protocol):
    topics: Topics

    def ensure_topics(self) -> None:
        """Create the city's topics if they are missing."""

    def producer(self) -> Producer: ...

    def consumer(self, topic: str, group: str) -> Consumer: ...
