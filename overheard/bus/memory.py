"""The in-process bus: the same contract as Kafka, for replay and `make run` without a broker.

One partition per topic, committed offsets per consumer group, and nothing
kept after the process ends: replay's durability comes from the archive itself.
A message sent as an object (a `Post`, an `Issue`) stays that object: consumers get it
as `Record.message`, and its bytes are made only if one reads `Record.value` (a dead
letter, a test), so a replay neither encodes nor decodes what passes between stages.
`release` drops what every group of a topic has committed, as Kafka's retention
would, so a long replay holds only what is still in flight.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

from overheard.bus.base import Headers, Payload, Record, Topics


class MemoryBus:
    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self._logs: dict[str, list[Record]] = defaultdict(list)
        self._committed: dict[tuple[str, str], int] = defaultdict(int)
        #: The offset of the first record each topic still holds (see `release`).
        self._first: dict[str, int] = defaultdict(int)

    def ensure_topics(self) -> None:
        for topic in self.topics.all():
            self._logs.setdefault(topic, [])

    def producer(self) -> MemoryProducer:
        return MemoryProducer(self)

    def consumer(self, topic: str, group: str) -> MemoryConsumer:
        return MemoryConsumer(self, topic, group)

    def records(self, topic: str) -> list[Record]:
        """Everything written to `topic` and not released, in order (for summaries and tests)."""
        return list(self._logs[topic])

    def release(self, topic: str) -> None:
        """Forget the records of `topic` that every consumer group of it has committed."""
        groups = [offset for (_, name), offset in self._committed.items() if name == topic]
        if not groups:
            return
        # A group that joined after a release has committed nothing, yet starts at _first.
        upto = max(min(groups), self._first[topic])
        del self._logs[topic][: upto - self._first[topic]]
        self._first[topic] = upto

    def _append(self, topic: str, key: bytes | None, value: Payload, headers: Headers) -> None:
        log = self._logs[topic]
        now_ms = int(time.time() * 1000)
        offset = self._first[topic] + len(log)
        log.append(Record(topic, 0, offset, key, value, headers, now_ms))


class MemoryProducer:
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._pending: list[tuple[str, bytes | None, Payload, Headers]] = []

    def send(
        self, topic: str, value: Payload, key: bytes | None = None, headers: Headers = ()
    ) -> None:
        self._pending.append((topic, key, value, tuple(headers)))

    def flush(self) -> None:
        for topic, key, value, headers in self._pending:
            self._bus._append(topic, key, value, headers)
        self._pending.clear()

    def close(self) -> None:
        self.flush()


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, topic: str, group: str) -> None:
        self._bus = bus
        self._topic = topic
        self._group = group
        self._position = max(bus._committed[(group, topic)], bus._first[topic])

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        log = self._bus._logs[self._topic]
        start = self._position - self._bus._first[self._topic]
        batch = log[start : start + max_records]
        self._position += len(batch)
        return batch

    def commit(self, records: Sequence[Record]) -> None:
        if records:
            key = (self._group, self._topic)
            last = max(record.offset for record in records)
            self._bus._committed[key] = max(self._bus._committed[key], last + 1)

    def lag(self) -> int:
        return self._bus._first[self._topic] + len(self._bus._logs[self._topic]) - self._position

    def lag_by_partition(self) -> dict[tuple[str, int], int]:
        return {(self._topic, 0): self.lag()}

    def close(self) -> None:
        return None
