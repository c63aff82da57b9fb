"""The checkpoint store: durable, atomic, and the way a restart resumes an archive."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from overheard.deadletter import DeadLetter
from overheard.ingest import CheckpointStore, Position
from overheard.ingest.errors import CheckpointError
from overheard.model import Post

Read = Callable[..., list[tuple[Post | DeadLetter, Position]]]


def test_a_saved_position_survives_a_new_store(tmp_path: Path) -> None:
    store_path = tmp_path / "state" / "archive.json"
    a, b = tmp_path / "a.jsonl", tmp_path / "b.csv"
    store = CheckpointStore(store_path)
    assert store.load(a) is None
    store.save(a, Position(str(a.resolve()), 120, 4, 2))
    store.save(b, Position(str(b.resolve()), 900, 31))
    store.save(a, Position(str(a.resolve()), 240, 7))
    again = CheckpointStore(store_path)
    assert again.load(a) == Position(str(a.resolve()), 240, 7)
    assert again.load(b) == Position(str(b.resolve()), 900, 31)
    assert json.loads(store_path.read_text())["version"] == 1
    assert [p.name for p in store_path.parent.iterdir()] == ["archive.json"]


def test_a_position_is_saved_under_its_own_archive(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "archive.json")
    with pytest.raises(ValueError, match="not in"):
        store.save(tmp_path / "a.jsonl", Position(str(tmp_path / "b.jsonl"), 10, 2))


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_path = tmp_path / "archive.json"
    archive = tmp_path / "a.jsonl"
    store = CheckpointStore(store_path)
    store.save(archive, Position(str(archive), 100, 3))
    before = store_path.read_bytes()

    def crash(source: str, target: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        store.save(archive, Position(str(archive), 200, 5))
    assert store_path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["archive.json"]


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"{not json", "cannot read"),
        (b'{"version": 7, "archives": {}}', "version 7"),
        (b'{"version": 1, "archives": {"/a": {"offset": "x"}}}', "not a checkpoint store"),
        (b"[]", "not a checkpoint store"),
    ],
)
def test_a_damaged_store_is_an_error_not_a_fresh_start(
    tmp_path: Path, content: bytes, complaint: str
) -> None:
    path = tmp_path / "archive.json"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=complaint):
        CheckpointStore(path)


def test_a_restart_resumes_after_the_last_acknowledged_post(
    tmp_path: Path, baltimore_csv: Path, read: Read
) -> None:
    archive = tmp_path / "baltimore.csv"
    archive.write_bytes(baltimore_csv.read_bytes())
    full = read(archive)
    store = CheckpointStore(tmp_path / "checkpoints.json")
    # Kafka acknowledged the first 300 posts; the process died while sending more.
    store.save(archive, full[299][1])
    restarted = CheckpointStore(tmp_path / "checkpoints.json")
    assert read(archive, start=restarted.load(archive)) == full[300:]
