"""The audit log: an append-only table of what reached a sink, what was forgotten, and when
retention ran, with who or what did it.

Where it lives (``[audit] url``): by default in the SQL sink's database when ``sql`` is one
of the sinks, so that one backup and one access policy cover the issues and their audit;
otherwise in ``var/audit.db`` (SQLite), so that a deployment with only files, a webhook or
311 still has one. It is a table of its own (``audit``, created when missing, like the
Open311 ledger), not part of the SQL sink's migrations: the audit must outlive a sink being
dropped or its schema being rebuilt, and it must exist without any SQL sink at all.

Append-only: this module only inserts and reads. On PostgreSQL, give the daemon's role
``INSERT, SELECT`` on ``audit`` and nothing else. An audit row never holds a post's text, an
author id or a handle: an issue id, a post id (the public post, which the issue row keeps
too), an author's pseudonym, counts and versions.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    make_url,
    select,
)
from sqlalchemy.exc import ArgumentError, DBAPIError

from overheard.errors import ConfigError, TransientError
from overheard.sinks.sql.failures import Failure, classify, describe
from overheard.sinks.sql.sink import create_engine, make_sqlite_folder
from overheard.sinks.sql.tables import UtcDateTime

if TYPE_CHECKING:
    from overheard.settings import Settings

DEFAULT_URL = "sqlite:///var/audit.db"

#: What an audit row records.
WRITTEN = "written"
FORGET = "forget"
RETENTION = "retention"
REPLY = "reply"

metadata = MetaData(
    naming_convention={"pk": "pk_%(table_name)s", "ix": "ix_%(table_name)s_%(column_0_N_name)s"}
)

audit_table = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String, nullable=False, comment="who or what: sink-stage, daemon, cli:<user>"),
    Column("action", String, nullable=False, comment="written | forget | retention | reply"),
    Column("sink", String),
    Column("issue_id", Uuid),
    Column("post_id", String),
    Column("author_key", String, comment="a pseudonym (overheard.privacy), never a raw id"),
    Column("detail", JSON, nullable=False, comment="versions, counts, reasons"),
    Index(None, "action", "post_id"),
)


@dataclass(frozen=True)
class Entry:
    """One audit row, as read back."""

    seq: int
    at: datetime
    actor: str
    action: str
    sink: str | None
    issue_id: uuid.UUID | None
    post_id: str | None
    author_key: str | None
    detail: dict[str, Any]


def cli_actor() -> str:
    """The actor of a command run by hand: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def audit_url(settings: Settings) -> str:
    """``[audit] url``, else the SQL sink's database when `sql` is a sink, else var/audit.db."""
    if settings.audit.url:
        return settings.audit.url
    if "sql" in settings.sinks:
        return settings.database.effective_url()
    return DEFAULT_URL


class AuditLog:
    """Appends audit rows to, and reads them from, the database at `url`."""

    def __init__(self, url: str) -> None:
        try:
            self._url = make_url(url)
        except ArgumentError:
            raise ConfigError("the audit URL is not a SQLAlchemy URL") from None
        self._engine = create_engine(self._url)
        self._created = False

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditLog:
        return cls(audit_url(settings))

    def __repr__(self) -> str:
        return f"AuditLog({self._url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        """The database's engine, for tables kept beside the audit (`overheard.replies`)."""
        return self._engine

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Raise `TransientError` for a database failure that may pass."""
        try:
            yield
        except DBAPIError as exc:
            if classify(exc) is Failure.TRANSIENT:
                shown = self._url.render_as_string(hide_password=True)
                raise TransientError(f"audit log {shown}: cannot {doing}: {describe(exc)}") from exc
            raise

    def create(self) -> None:
        """Create the SQLite file's folder and the table, when missing."""
        if self._created:
            return
        make_sqlite_folder(self._url)
        with self.guard("create the table"), self._engine.begin() as connection:
            metadata.create_all(connection, checkfirst=True)
        self._created = True

    def close(self) -> None:
        self._engine.dispose()

    def record(
        self,
        action: str,
        actor: str,
        *,
        sink: str | None = None,
        issue_id: uuid.UUID | None = None,
        post_id: str | None = None,
        author_key: str | None = None,
        detail: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        """Append one row."""
        self.record_many(
            [
                {
                    "action": action,
                    "actor": actor,
                    "sink": sink,
                    "issue_id": issue_id,
                    "post_id": post_id,
                    "author_key": author_key,
                    "detail": dict(detail or {}),
                }
            ],
            at=at,
        )

    def record_many(self, rows: Sequence[Mapping[str, Any]], *, at: datetime | None = None) -> None:
        """Append rows (mappings of the columns but `seq` and `at`) in one transaction."""
        if not rows:
            return
        self.create()
        moment = at or datetime.now(UTC)
        values = [
            {
                "at": moment,
                "sink": None,
                "issue_id": None,
                "post_id": None,
                "author_key": None,
                "detail": {},
                **row,
            }
            for row in rows
        ]
        with self.guard("write"), self._engine.begin() as connection:
            connection.execute(audit_table.insert(), values)

    def entries(self, action: str | None = None, post_id: str | None = None) -> list[Entry]:
        """Rows in the order they were written, optionally of one action or post."""
        self.create()
        query = select(audit_table).order_by(audit_table.c.seq)
        if action is not None:
            query = query.where(audit_table.c.action == action)
        if post_id is not None:
            query = query.where(audit_table.c.post_id == post_id)
        with self.guard("read"), self._engine.connect() as connection:
            return [Entry(**row) for row in connection.execute(query).mappings()]

    def forgotten_posts(self) -> set[str]:
        """The post ids a forget was recorded for."""
        self.create()
        query = select(audit_table.c.post_id).where(
            audit_table.c.action == FORGET, audit_table.c.post_id.is_not(None)
        )
        with self.guard("read"), self._engine.connect() as connection:
            return {post_id for (post_id,) in connection.execute(query)}
