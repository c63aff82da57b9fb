"""The live connectors' cursor store: durable, one transaction per batch, never silently reset."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from overheard.ingest.cursors import CursorStore, Deletion, Sent
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


def test_posts_sent_are_tracked_until_deleted_or_too_old(tmp_path: Path) -> None:
    store = CursorStore(tmp_path / "live.sqlite")
    day = datetime(2026, 11, 1, tzinfo=UTC)
    sent = [Sent("x:1", day), Sent("reddit:t1_a", day), Sent("x:2", day + timedelta(days=1))]
    store.commit("s", {"after": "1"}, sent=sent)
    store.commit("s", {"after": "1"}, sent=sent[:1])  # a repeat changes nothing
    assert store.sent_ids("x") == ["x:1", "x:2"]
    assert store.sent_ids("reddit") == ["reddit:t1_a"]
    store.commit("x:compliance", {"checked_at": "…"}, [Deletion("x:1", "deleted on X")])
    assert store.sent_ids("x") == ["x:2"]
    assert store.prune_sent(day + timedelta(hours=1)) == 1
    store.close()
    reopened = CursorStore(tmp_path / "live.sqlite")
    assert reopened.sent_ids("x") == ["x:2"] and reopened.sent_ids("reddit") == []
