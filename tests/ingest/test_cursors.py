"""The live connectors' cursor store: durable, one transaction per batch, never silently reset."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from overheard.ingest.cursors import CursorStore, Deletion
from overheard.ingest.errors import CheckpointError


def test_a_stream_never_committed_starts_from_an_empty_cursor(tmp_path: Path) -> None:
    assert CursorStore(tmp_path / "live.sqlite").load("x:search:abc") == {}


def test_cursors_and_deletions_survive_a_reopen(tmp_path: Path) -> None:
    store = CursorStore(tmp_path / "live.sqlite")
    store.commit("reddit:r/baltimore/comments", {"after": "t1_a"}, [Deletion("reddit:t1_z", "x")])
    store.commit("reddit:r/baltimore/comments", {"after": "t1_b"}, [Deletion("reddit:t1_z", "x")])
    store.close()
    again = CursorStore(tmp_path / "live.sqlite")
    assert again.load("reddit:r/baltimore/comments") == {"after": "t1_b"}
    assert again.deletions() == [Deletion("reddit:t1_z", "x")]


def test_a_failed_commit_keeps_neither_the_cursor_nor_the_deletions(tmp_path: Path) -> None:
    store = CursorStore(tmp_path / "live.sqlite")
    store.commit("s", {"after": "t1_a"})
    with pytest.raises(TypeError):
        store.commit("s", {"after": object()}, [Deletion("reddit:t1_z", "gone")])
    with pytest.raises(sqlite3.IntegrityError):
        store.commit("s", {"after": "t1_b"}, [Deletion(None, "gone")])  # type: ignore[arg-type]
    assert store.load("s") == {"after": "t1_a"} and store.deletions() == []


def test_a_damaged_cursor_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    store = CursorStore(tmp_path / "live.sqlite")
    store.commit("s", {"after": "t1_a"})
    store._db.execute("UPDATE cursors SET state = '{torn'")
    store._db.commit()
    with pytest.raises(CheckpointError, match="damaged"):
        store.load("s")
