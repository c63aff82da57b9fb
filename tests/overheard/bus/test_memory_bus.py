"""The in-process bus releases what every group committed, keeps offsets counting, and
carries messages sent as objects as they are."""

import pytest

from overheard.bus.base import Topics
from overheard.bus.memory import MemoryBus
from tests.factories import post

TOPICS = Topics.for_city("test", "baltimore")


def _send(bus: MemoryBus, count: int, start: int = 0) -> None:
    producer = bus.producer()
    for number in range(start, start + count):
        producer.send(TOPICS.posts, str(number).encode())
    producer.flush()


def test_release_drops_only_what_every_group_committed() -> None:
    bus = MemoryBus(TOPICS)
    fast, slow = bus.consumer(TOPICS.posts, "fast"), bus.consumer(TOPICS.posts, "slow")
    _send(bus, 10)
    fast.commit(fast.poll(8, 0.0))
    slow.commit(slow.poll(3, 0.0))
    bus.release(TOPICS.posts)
    assert [r.offset for r in bus.records(TOPICS.posts)] == list(range(3, 10))
    assert [r.value for r in slow.poll(100, 0.0)] == [str(n).encode() for n in range(3, 10)]
    assert [r.offset for r in fast.poll(100, 0.0)] == [8, 9]
    assert fast.lag() == slow.lag() == 0


def test_offsets_go_on_after_a_release_and_a_new_group_starts_at_what_is_left() -> None:
    bus = MemoryBus(TOPICS)
    consumer = bus.consumer(TOPICS.posts, "stage")
    _send(bus, 5)
    consumer.commit(consumer.poll(5, 0.0))
    bus.release(TOPICS.posts)
    assert bus.records(TOPICS.posts) == []
    _send(bus, 2, start=5)
    assert consumer.lag() == 2
    assert [r.offset for r in consumer.poll(10, 0.0)] == [5, 6]
    late = bus.consumer(TOPICS.posts, "late")
    bus.release(TOPICS.posts)  # the late group has committed nothing: nothing goes
    assert [r.value for r in late.poll(10, 0.0)] == [b"5", b"6"]


def test_a_topic_nobody_consumes_keeps_everything() -> None:
    bus = MemoryBus(TOPICS)
    producer = bus.producer()
    producer.send(TOPICS.deadletters, b"bad")
    producer.flush()
    bus.release(TOPICS.deadletters)
    assert [r.value for r in bus.records(TOPICS.deadletters)] == [b"bad"]


def test_a_message_sent_as_an_object_arrives_as_that_object_with_its_bytes_on_demand() -> None:
    bus = MemoryBus(TOPICS)
    sent = post("Huge pothole on Eastern Ave again", "t3_obj")
    producer = bus.producer()
    producer.send(TOPICS.posts, sent, key=sent.id.encode())
    producer.send(TOPICS.posts, b"raw")
    producer.flush()
    carried, raw = bus.consumer(TOPICS.posts, "stage").poll(10, 0.0)
    assert carried.message is sent
    assert carried.value == sent.to_bytes()
    assert carried.key == sent.id.encode()
    assert (raw.message, raw.value) == (None, b"raw")
    with pytest.raises(AttributeError):
        carried.offset = 7  # type: ignore[misc]
