"""Reading an archive in shares (a parallel replay's workers): together, exactly the archive."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from overheard.deadletter import DeadLetter
from overheard.ingest import ArchiveReader, Position
from overheard.ingest.archive import Delivery
from overheard.ingest.errors import PositionError

COLLECTED_AT = datetime(2026, 11, 23, tzinfo=UTC)


def _shared(path: Path, size: int, shares: int) -> list[Delivery]:
    """Every share's chunks put back in chunk order, checking each chunk is its share's,
    with the position each chunk ends at given to its last item (the others get None)."""
    chunks: dict[int, list[Delivery]] = {}
    for index in range(shares):
        reader = ArchiveReader(path, collected_at=COLLECTED_AT)
        numbers = []
        for number, items, position in reader.share(size, shares, index):
            assert number % shares == index
            assert number not in chunks
            assert (position is None) == (not items)
            chunks[number] = [(item, None) for item in items[:-1]]
            chunks[number] += [(item, position) for item in items[-1:]]
            numbers.append(number)
        assert numbers == sorted(numbers)
    assert sorted(chunks) == list(range(len(chunks)))
    return [delivery for number in sorted(chunks) for delivery in chunks[number]]


def _same(shared: list[Delivery], whole: list[Delivery]) -> None:
    """The same items in the same order, and each chunk's end where the whole read is then."""
    assert len(shared) == len(whole)
    for (a, pa), (b, pb) in zip(shared, whole, strict=True):
        assert pa is None or pa == pb
        assert type(a) is type(b)
        if isinstance(a, DeadLetter) and isinstance(b, DeadLetter):
            assert (a.reason, a.error, a.origin, a.original) == (
                b.reason,
                b.error,
                b.origin,
                b.original,
            )
        else:
            assert a == b
    assert shared[-1][1] == whole[-1][1]


@pytest.fixture
def mixed_archive(
    tmp_path: Path, x_v2_responses: dict[str, Any], reddit_responses: dict[str, Any]
) -> Path:
    """Records of many posts (X responses) and of one (X tweets, Reddit things), blank
    lines, and lines that are dead letters."""
    records: list[Any] = list(x_v2_responses.values())[:6]
    records += x_v2_responses["test_client_get_users_tweets"]["data"]
    search = reddit_responses["TestSubreddit.test_search#1"]
    records += [child["data"] for child in search["data"]["children"]]
    real = [json.dumps(record).encode() for record in records]
    lines = [*real[:6], b"", b'{"broken": ', *real[6:], b"\xff\xfe", b"42"]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("size", [1, 2, 5, 1000])
@pytest.mark.parametrize("shares", [1, 2, 3])
def test_the_shares_of_a_jsonl_archive_are_the_archive(
    mixed_archive: Path, size: int, shares: int
) -> None:
    whole = list(ArchiveReader(mixed_archive, collected_at=COLLECTED_AT))
    assert sum(isinstance(item, DeadLetter) for item, _ in whole) == 3
    _same(_shared(mixed_archive, size, shares), whole)


def test_the_shares_of_a_csv_and_a_gzip_archive_are_the_archive(
    tmp_path: Path, baltimore_csv: Path
) -> None:
    packed = tmp_path / "dump.csv.gz"
    packed.write_bytes(gzip.compress(baltimore_csv.read_bytes()))
    for path in (baltimore_csv, packed):
        whole = list(ArchiveReader(path, collected_at=COLLECTED_AT))
        assert len(whole) > 100
        _same(_shared(path, 7, 3), whole)


def test_a_json_document_is_one_record_in_the_first_share(
    tmp_path: Path, x_v2_responses: dict[str, Any]
) -> None:
    path = tmp_path / "response.json"
    path.write_text(json.dumps(next(iter(x_v2_responses.values()))))
    whole = list(ArchiveReader(path, collected_at=COLLECTED_AT))
    assert len(whole) > 1
    reader = ArchiveReader(path, collected_at=COLLECTED_AT)
    assert [number for number, _, _ in reader.share(10, 2, 1)] == []
    _same(_shared(path, 10, 2), whole)


def test_a_share_starts_at_the_beginning(mixed_archive: Path) -> None:
    reader = ArchiveReader(mixed_archive, start=Position(str(mixed_archive.resolve()), 0, 1, 1))
    with pytest.raises(PositionError):
        next(reader.share(10, 2, 0))
    with pytest.raises(ValueError, match="not a share"):
        next(ArchiveReader(mixed_archive).share(10, 2, 2))
