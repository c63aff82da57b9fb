"""Where each live stream stopped, and which posts the platforms deleted: one SQLite file.

Why SQLite and not a compacted Kafka topic. A stream's cursor (X: since_id and the
next_token of a half-read poll; Reddit: the newest fullname) is written right after
`Producer.flush` returned, i.e. after Kafka acknowledged every post before it. In
SQLite that is one local transaction, and the deletions seen in the same batch go in
the same transaction, so the two can never disagree. With `synchronous=FULL` in WAL
mode the commit is on disk when `commit` returns, and a crash leaves the previous
cursor or the new one, never half of one. A compacted topic would need a second
produce and acknowledgement per batch, a read to the end of the topic at start-up,
and a broker that keeps data; it would let a connector move between hosts, which one
process per city does not need. The price of SQLite: the file belongs to the host (or
volume) the connector runs on, and one process writes a given stream's cursor.

A crash between the flush and this commit loses no post: the restart resumes from
the previous cursor and sends that batch again; the posts' ids make the repeat
harmless downstream (the classify stage derives the same issue id).

The `sent` table lists the posts a live connector sent (id and creation time), written in
the same transaction as the cursor: the ids to ask the platform about again later (X's
batch compliance, Reddit's `/api/info`; `ingest/recheck.py`). A post found deleted leaves
it; posts older than any sink keeps text are pruned, since nothing is left to forget.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import CheckpointError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    stream TEXT NOT NULL PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deletions (
    post_id TEXT NOT NULL PRIMARY KEY,
    reason TEXT NOT NULL,
    noticed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (
    post_id TEXT NOT NULL PRIMARY KEY,
    created_at TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_by_creation ON sent (created_at);
"""

Cursor = dict[str, Any]


def _stamp(moment: datetime) -> str:
    """A UTC time of fixed width, so that SQLite compares the text in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Sent:
    """A post a live connector sent: its id, and when it was posted (what retention counts)."""

    post_id: str
    created_at: datetime


@dataclass(frozen=True)
class Deletion:
    """A post the platform reports deleted or removed: sinks that keep its text must drop it."""

    post_id: str
    reason: str


class CursorStore:
    """Cursors by stream name, and the deletions noticed, in the SQLite file at `path`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(f"cannot open the cursor store {self.path}: {exc}") from exc

    def load(self, stream: str) -> Cursor:
        """The stream's cursor; empty when it never committed (start from the newest)."""
        row = self._db.execute("SELECT state FROM cursors WHERE stream = ?", (stream,)).fetchone()
        if row is None:
            return {}
        try:
            state = json.loads(row[0])
        except ValueError as exc:
            raise CheckpointError(f"the cursor of {stream} in {self.path} is damaged") from exc
        if not isinstance(state, dict):
            raise CheckpointError(f"the cursor of {stream} in {self.path} is not an object")
        return state

    def commit(
        self,
        stream: str,
        cursor: Mapping[str, Any],
        deletions: Iterable[Deletion] = (),
        sent: Iterable[Sent] = (),
    ) -> None:
        """Record the cursor, the deletions and the posts sent in one transaction, durable
        once this returns. A deleted post is no longer one to check again."""
        now = datetime.now(UTC).isoformat()
        deletions = list(deletions)
        with self._db:  # one transaction: committed on success, rolled back on error
            self._db.execute(
                "INSERT INTO cursors (stream, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (stream) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (stream, json.dumps(dict(cursor), sort_keys=True), now),
            )
            self._db.executemany(
                "INSERT INTO deletions (post_id, reason, noticed_at) VALUES (?, ?, ?) "
                "ON CONFLICT (post_id) DO NOTHING",
                [(d.post_id, d.reason, now) for d in deletions],
            )
            self._db.executemany(
                "INSERT INTO sent (post_id, created_at, sent_at) VALUES (?, ?, ?) "
                "ON CONFLICT (post_id) DO NOTHING",
                [(s.post_id, _stamp(s.created_at), now) for s in sent],
            )
            self._db.executemany(
                "DELETE FROM sent WHERE post_id = ?", [(d.post_id,) for d in deletions]
            )

    def sent_ids(self, platform: str) -> list[str]:
        """The ids of the posts sent from `platform` (`x`, `reddit`) not known deleted,
        oldest post first."""
        rows = self._db.execute(
            "SELECT post_id FROM sent WHERE post_id LIKE ? ORDER BY created_at, post_id",
            (f"{platform}:%",),
        )
        return [post_id for (post_id,) in rows]

    def prune_sent(self, before: datetime) -> int:
        """Stop tracking posts created before `before`; returns how many."""
        with self._db:
            cursor = self._db.execute("DELETE FROM sent WHERE created_at < ?", (_stamp(before),))
        return cursor.rowcount

    def deletions(self) -> list[Deletion]:
        """Every deletion noticed, oldest first: what `overheard forget` will act on."""
        rows = self._db.execute(
            "SELECT post_id, reason FROM deletions ORDER BY noticed_at, post_id"
        )
        return [Deletion(post_id, reason) for post_id, reason in rows]

    def close(self) -> None:
        self._db.close()
