"""The bus contract: what stages need of Kafka, and what the in-process bus provides too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]


class Encodable(Protocol):
    """A message that makes its own bytes (`overheard.model.Message`): immutable, so a
    bus may hand the same object to every consumer."""

    def to_bytes(self) -> bytes: ...


#: What a producer sends: the bytes, or a message the bus encodes when it needs the bytes.
Payload = bytes | Encodable


def encoded(value: Payload) -> bytes:
    """The bytes of a payload."""
    return value if isinstance(value, bytes) else value.to_bytes()


class Record:
    """A message read from a topic.

    `value` is its bytes. A bus that keeps the sent object (the in-process bus) gives
    it as `message`, and makes `value` from it only when asked: a stage that finds in
    `message` the type it expects uses it and skips decoding. Over Kafka `message` is
    None. Read-only once made.
    """

    __slots__ = (
        "topic",
        "partition",
        "offset",
        "key",
        "headers",
        "timestamp_ms",
        "_payload",
        "_bytes",
    )

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Headers
    #: When the message entered the bus (epoch milliseconds), where the bus says.
    timestamp_ms: int | None
    _payload: Payload
    _bytes: bytes | None

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: Payload,
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> None:
        init = object.__setattr__  # the class refuses assignment (read-only)
        init(self, "topic", topic)
        init(self, "partition", partition)
        init(self, "offset", offset)
        init(self, "key", key)
        init(self, "headers", headers)
        init(self, "timestamp_ms", timestamp_ms)
        init(self, "_payload", value)
        init(self, "_bytes", value if isinstance(value, bytes) else None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Record is read-only ({name})")

    @property
    def message(self) -> Encodable | None:
        """The object sent, where the bus kept it; else None."""
        return None if isinstance(self._payload, bytes) else self._payload

    @property
    def value(self) -> bytes:
        data = self._bytes
        if data is None:
            data = encoded(self._payload)
            object.__setattr__(self, "_bytes", data)
        return data

    @property
    def origin(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def __repr__(self) -> str:
        return f"Record({self.origin}, key={self.key!r}, {len(self.value)} bytes)"


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
        self, topic: str, value: Payload, key: bytes | None = None, headers: Headers = ()
    ) -> None:
        """Queue a message; `flush` says whether it was acknowledged.

        `value` is bytes, or a message (`Encodable`) the bus encodes when it needs the
        bytes: Kafka at once, the in-process bus only when a consumer reads `value`.
        """

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
