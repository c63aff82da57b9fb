"""Inspecting the dead-letter topic, and re-driving fixed messages to where they came from.

Behind `overheard deadletters list|show|replay`. A dead letter's value is the
original message byte for byte and its origin (`topic[partition]@offset`) names
the topic it was read from, so replaying is producing that value again, with
its key, to that topic. Replaying twice is harmless: the stages derive every
issue id from the city and the post id, and every sink writes an issue once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from overheard.bus.base import Producer, Record, Topics
from overheard.bus.kafka import connection_options
from overheard.bus.memory import MemoryBus
from overheard.deadletter import DeadLetter
from overheard.errors import TransientError
from overheard.settings import BusSettings

#: Added to a replayed message: which dead letter it came from.
REPLAYED_FROM = "overheard.replayed-from"

_TOPIC_ORIGIN = re.compile(r"^(?P<topic>.+)\[(?P<partition>\d+)\]@(?P<offset>\d+)$")


@dataclass(frozen=True)
class Stored:
    """A dead letter as found in the topic."""

    record: Record
    letter: DeadLetter

    @property
    def id(self) -> str:
        """`partition:offset` in the dead-letter topic: what `show` and `replay` take."""
        return f"{self.record.partition}:{self.record.offset}"

    @property
    def origin_topic(self) -> str | None:
        """The topic the original was read from; None when it came from a file (ingest)."""
        found = _TOPIC_ORIGIN.match(self.letter.origin)
        return found["topic"] if found else None


def parse(records: Iterable[Record]) -> list[Stored]:
    return [
        Stored(record, DeadLetter.from_record(record.key, record.value, list(record.headers)))
        for record in records
    ]


def read_kafka(settings: BusSettings, topic: str, max_wait_s: float = 30.0) -> list[Record]:
    """Every message in `topic`, read from the beginning without a consumer group."""
    consumer = KafkaConsumer(**connection_options(settings), enable_auto_commit=False)
    try:
        numbers = consumer.partitions_for_topic(topic) or set()
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[Record] = []
        deadline = time.monotonic() + max_wait_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TransientError(f"could not read {topic} to its end in {max_wait_s:g}s")
            for messages in consumer.poll(timeout_ms=500).values():
                records.extend(
                    Record(
                        m.topic,
                        m.partition,
                        m.offset,
                        m.key,
                        m.value,
                        tuple((name, value or b"") for name, value in m.headers or ()),
                        m.timestamp,
                    )
                    for m in messages
                    if m.offset < ends[TopicPartition(m.topic, m.partition)]
                )
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def read_memory(bus: MemoryBus) -> list[Record]:
    return bus.records(bus.topics.deadletters)


def select(
    letters: Sequence[Stored],
    ids: Sequence[str] = (),
    stage: str | None = None,
    error: str | None = None,
) -> list[Stored]:
    """The letters named by id (all of them when none is named), narrowed by stage and error.

    Raises KeyError naming the ids not in the topic.
    """
    by_id = {stored.id: stored for stored in letters}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise KeyError(", ".join(missing))
    chosen = [by_id[i] for i in ids] if ids else list(letters)
    return [
        s
        for s in chosen
        if (stage is None or s.letter.stage == stage) and (error is None or s.letter.error == error)
    ]


@dataclass(frozen=True)
class Replayed:
    stored: Stored
    #: The topic it was sent to, or None when it was skipped.
    topic: str | None
    note: str


def replay(letters: Sequence[Stored], producer: Producer, topics: Topics) -> list[Replayed]:
    """Send each letter's original bytes, with its key, to its origin topic; then flush.

    Only the city's posts and issues topics are origins: a letter from a file
    (a line the archive reader could not parse) or from another topic is skipped.
    """
    allowed = {topics.posts, topics.issues}
    done: list[Replayed] = []
    for stored in letters:
        topic = stored.origin_topic
        if topic is None:
            done.append(Replayed(stored, None, f"origin {stored.letter.origin} is not a topic"))
            continue
        if topic not in allowed:
            done.append(Replayed(stored, None, f"{topic} is not one of this city's topics"))
            continue
        producer.send(
            topic,
            stored.record.value,
            key=stored.record.key,
            headers=((REPLAYED_FROM, f"{stored.record.topic}[{stored.id}]".encode()),),
        )
        done.append(Replayed(stored, topic, "sent"))
    producer.flush()
    return done
