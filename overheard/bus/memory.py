"""The in-process bus: the same contract as Kafka, for replay and `make run` without a broker.

One partition per topic, committed offsets per consumer group, and nothing
kept after the process ends: replay's durability comes from the archive itself.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

from overheard.bus.base import Headers, Record, Topics


class MemoryBus:
    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self._logs: dict[str, list[Record]] = defaultdict(list)
        self._committed: dict[tuple[str, str], int] = defaultdict(int)

    def ensure_topics(self) -> None:
        for topic in self.topics.all():
            self._logs.setdefault(topic, [])

    def producer(self) -> MemoryProducer:
        return MemoryProducer(self)

    def consumer(self, topic: str, group: str) -> MemoryConsumer:
        return MemoryConsumer(self, topic, group)

    def records(self, topic: str) -> list[Record]:
        """Everything ever written to `topic`, in order (for summaries and tests)."""
        return list(self._logs[topic])

    def _append(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        log = self._logs[topic]
        now_ms = int(time.time() * 1000)
        log.append(Record(topic, 0, len(log), key, value, headers, now_ms))


class MemoryProducer:
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._pending: list[tuple[str, bytes | None, bytes, Headers]] = []

    def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers = ()
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
        self._position = bus._committed[(group, topic)]

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        log = self._bus._logs[self._topic]
        batch = log[self._position : self._position + max_records]
        self._position += len(batch)
        return batch

    def commit(self, records: Sequence[Record]) -> None:
        if records:
            key = (self._group, self._topic)
            last = max(record.offset for record in records)
            self._bus._committed[key] = max(self._bus._committed[key], last + 1)

    def lag(self) -> int:
        return len(self._bus._logs[self._topic]) - self._position

    def lag_by_partition(self) -> dict[tuple[str, int], int]:
        return {(self._topic, 0): self.lag()}

    def close(self) -> None:
        return None
