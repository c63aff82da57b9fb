"""The open311 sink's ledger: which issue became which service request, and how far it got.

One row per issue that the sink ever tried to file::

    open311_ledger
      issue_id            UUID, primary key      Issue.id
      service_code        text, not null         the service it was filed under
      state               text, not null         posting | filed | token | filed_blackbox
      service_request_id  text                   the city's id (filed; token once resolved)
      token               text                   the batch token (token; kept once resolved)
      intent_at           timestamp, not null    when the first POST was about to be sent
      updated_at          timestamp, not null    the last change
      cluster_id          UUID                   the cluster's first issue (its own id for
                                                 the first; null: not clustered)
      cluster_key         text                   `city:category` of a clustered issue
      lat, lon            float                  a clustered issue's point
      posted_at           timestamp              a clustered issue's post time
      update_id           text                   the server's id of the note a later report
                                                 of a cluster was posted as

The states, in the order a request goes through them:

- ``posting``: the intent, written *before* the POST. A row left in this state means the
  process stopped (or the answer was unclear) between the POST and the result: the sink
  looks the request up on the server before it posts again.
- ``filed``: the server answered a ``service_request_id``.
- ``token``: a batch service answered a token; `Open311Sink.resolve_tokens` turns it into
  ``filed`` once ``GET tokens/{token}.json`` knows the id. The request is filed already.
- ``filed_blackbox``: a blackbox service accepted the request and answers no id, ever.

A later report of a cluster (``cluster_id`` another issue's id) is never filed on its own:
its row takes the state of its cluster's request (``filed`` with that request's id,
``token`` with its token, or ``filed_blackbox``), so a redelivery finds it done. When the
token resolves, every row holding it becomes ``filed`` with the id (`Ledger.resolve_token`).
The sink rebuilds its clusters from the rows of the last window when it opens
(`Ledger.recent_reports`).

A note owed (the sink posts later reports as notes, ``[open311] updates``) is a row of a
table of its own, ``open311_notes``, written in the same transaction as the report's ledger row
(`Ledger.attach`), before any POST::

    open311_notes
      issue_id     UUID, primary key   the later report (its ledger row)
      description  text, not null      the note's text, as the city will get it
      media_url    text                the post's URL
      post_id      text, not null      for ``overheard forget``
      author_key   text                the author's pseudonym, for ``overheard forget``
      owed_at      timestamp, not null when the report was attached

The row goes when the server accepts the note (in the transaction that writes the
note's id to ``update_id``, `Ledger.noted`), refuses it, the post is forgotten
(`Ledger.drop_note`, `Ledger.forget_notes`), or the post is older than the sink's
``[retention] text_days`` (`Ledger.drop_notes_before`: that note is never sent). So the
ledger never holds a post's text longer than the note is owed, and a note is owed until
the ledger knows it was posted: a process that stops between the POST and `noted` posts
it again, with the same client ``update_id``, which lets the server recognise it.
`Ledger.owed_notes` lists the notes whose request has an id (``filed``), in the order the
reports were posted.

Why ``metadata.create_all`` and not Alembic, as the SQL sink does: the ledger is one small
table in a database of its own (``[open311] ledger_url``). ``create_all`` creates it when it
is missing and leaves it alone otherwise. The cluster columns came later: they are nullable
and only added, and `Ledger.create` adds those a ledger lacks (``ALTER TABLE ... ADD
COLUMN``), so a ledger made before them keeps working and no state or constraint changed.
A change that is not purely additive (a new state, a constraint) should move the ledger to
the SQL sink's approach (``overheard.sinks.sql.migrate``: Alembic configured in code, its
own version table).

A further table, ``open311_forgotten`` (``subject`` ``post:<post id>`` or
``author:<pseudonym>``, ``forgotten_at``), records each ``overheard forget``: the city already
holds what it was sent, so forgetting changes nothing else here, except that a note still
owed for that post or author is dropped. ``create_all`` adds both tables to a ledger made
before they existed.

The engine (SQLite with WAL and ``BEGIN IMMEDIATE``, PostgreSQL with a connect timeout,
parameters kept out of errors) and the classification of database errors are the SQL
sink's: a database that is down or busy raises `TransientError`; anything else is raised
as it is.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Uuid,
    delete,
    func,
    inspect,
    make_url,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError

from overheard.clusters import Report
from overheard.errors import ConfigError, TransientError
from overheard.sinks.sql.failures import Failure, classify, describe
from overheard.sinks.sql.sink import create_engine, make_sqlite_folder
from overheard.sinks.sql.tables import UtcDateTime

log = logging.getLogger(__name__)

POSTING = "posting"
FILED = "filed"
TOKEN = "token"
FILED_BLACKBOX = "filed_blackbox"
STATES = (POSTING, FILED, TOKEN, FILED_BLACKBOX)
#: States in which the request is on the server: a redelivered issue is written.
DONE = frozenset({FILED, TOKEN, FILED_BLACKBOX})

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

ledger_table = Table(
    "open311_ledger",
    metadata,
    Column("issue_id", Uuid, primary_key=True, comment="Issue.id"),
    Column("service_code", String, nullable=False),
    Column("state", String, nullable=False),
    Column("service_request_id", String),
    Column("token", String),
    Column("intent_at", UtcDateTime, nullable=False, comment="before the first POST"),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("cluster_id", Uuid, comment="the cluster's first issue"),
    Column("cluster_key", String),
    Column("lat", Float),
    Column("lon", Float),
    Column("posted_at", UtcDateTime),
    Column("update_id", String, comment="the note a later report was posted as"),
    CheckConstraint("state IN (" + ", ".join(f"'{s}'" for s in STATES) + ")", name="state_known"),
    CheckConstraint(f"state != '{FILED}' OR service_request_id IS NOT NULL", name="filed_has_id"),
    CheckConstraint(f"state != '{TOKEN}' OR token IS NOT NULL", name="token_has_token"),
    Index(None, "state"),
    Index(None, "cluster_key", "posted_at"),
)
#: Columns added after the first schema, nullable, added to older ledgers by `create`.
ADDED_COLUMNS = ("cluster_id", "cluster_key", "lat", "lon", "posted_at", "update_id")


forgotten_table = Table(
    "open311_forgotten",
    metadata,
    Column("subject", String, primary_key=True, comment="post:<post id> or author:<pseudonym>"),
    Column("forgotten_at", UtcDateTime, nullable=False),
)


notes_table = Table(
    "open311_notes",
    metadata,
    Column("issue_id", Uuid, primary_key=True, comment="the later report (its ledger row)"),
    Column("description", String, nullable=False),
    Column("media_url", String),
    Column("post_id", String, nullable=False, comment="for overheard forget"),
    Column("author_key", String, comment="the author's pseudonym, for overheard forget"),
    Column("owed_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True)
class LedgerEntry:
    issue_id: uuid.UUID
    service_code: str
    state: str
    service_request_id: str | None
    token: str | None
    intent_at: datetime
    updated_at: datetime
    cluster_id: uuid.UUID | None = None
    cluster_key: str | None = None
    lat: float | None = None
    lon: float | None = None
    posted_at: datetime | None = None
    update_id: str | None = None


@dataclass(frozen=True)
class Placement:
    """Where a clustered issue belongs: its cluster (the first issue's id) and its report."""

    cluster: uuid.UUID
    report: Report

    def values(self) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster,
            "cluster_key": self.report.key,
            "lat": self.report.lat,
            "lon": self.report.lon,
            "posted_at": self.report.posted_at,
        }


@dataclass(frozen=True)
class Note:
    """What a later report's note says, kept while it is owed."""

    description: str
    media_url: str | None
    post_id: str
    author_key: str | None


@dataclass(frozen=True)
class OwedNote:
    """A note owed on a request that has its id: what `Open311Sink` posts."""

    issue_id: uuid.UUID
    cluster_id: uuid.UUID
    service_request_id: str
    #: The report's post time (the note's ``updated_datetime``).
    posted_at: datetime
    description: str
    media_url: str | None


class Ledger:
    """Issue id → service request, in SQLite or PostgreSQL."""

    def __init__(self, url: str) -> None:
        try:
            self._url = make_url(url)
        except ArgumentError:
            raise ConfigError(
                "the open311 ledger URL is not a SQLAlchemy URL "
                "(dialect+driver://user:password@host/database)"
            ) from None
        backend = self._url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ConfigError(f"the open311 ledger lives in PostgreSQL or SQLite, not {backend!r}")
        self._dialect_insert = postgresql.insert if backend == "postgresql" else sqlite.insert
        self._engine = create_engine(self._url)

    @property
    def shown_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Ledger({self.shown_url!r})"

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            if classify(exc) is Failure.TRANSIENT:
                raise TransientError(
                    f"open311 ledger {self.shown_url}: cannot {doing}: {describe(exc)}"
                ) from exc
            raise

    def create(self) -> None:
        """Create the SQLite file's folder and the tables when missing, and add the
        columns an older ledger lacks."""
        make_sqlite_folder(self._url)
        with self._guard("create the table"), self._engine.begin() as connection:
            metadata.create_all(connection, checkfirst=True)
            self._add_columns(connection)

    @staticmethod
    def _add_columns(connection: Connection) -> None:
        present = {column["name"] for column in inspect(connection).get_columns(ledger_table.name)}
        missing = [name for name in ADDED_COLUMNS if name not in present]
        if not missing:
            return
        log.info("open311 ledger: adding the columns %s", ", ".join(missing))
        dialect = connection.dialect
        preparer = dialect.identifier_preparer
        for name in missing:
            column = ledger_table.c[name]
            kind = column.type.compile(dialect=dialect)
            connection.execute(
                text(
                    f"ALTER TABLE {preparer.format_table(ledger_table)} "
                    f"ADD COLUMN {preparer.format_column(column)} {kind}"
                )
            )
        for index in ledger_table.indexes:
            index.create(connection, checkfirst=True)

    def close(self) -> None:
        self._engine.dispose()

    def get(self, issue_id: uuid.UUID) -> LedgerEntry | None:
        query = select(ledger_table).where(ledger_table.c.issue_id == issue_id)
        with self._guard("read"), self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else LedgerEntry(**row)

    def intend(
        self,
        issue_id: uuid.UUID,
        service_code: str,
        now: datetime,
        placement: Placement | None = None,
    ) -> LedgerEntry:
        """Record the intent to POST (state ``posting``); keeps the first intent's time."""
        placed = placement.values() if placement else {}
        self._upsert(
            {
                "issue_id": issue_id,
                "service_code": service_code,
                "state": POSTING,
                "intent_at": now,
                "updated_at": now,
                **placed,
            },
            update=("service_code", "state", "updated_at", *placed),
        )
        entry = self.get(issue_id)
        assert entry is not None
        return entry

    def record(
        self,
        issue_id: uuid.UUID,
        service_code: str,
        state: str,
        now: datetime,
        *,
        service_request_id: str | None = None,
        token: str | None = None,
    ) -> None:
        """Record what the server answered (``filed``, ``token`` or ``filed_blackbox``)."""
        if state not in DONE:
            raise ValueError(f"not a final ledger state: {state!r}")
        values: dict[str, Any] = {
            "issue_id": issue_id,
            "service_code": service_code,
            "state": state,
            "service_request_id": service_request_id,
            "intent_at": now,
            "updated_at": now,
        }
        update = ["service_code", "state", "service_request_id", "updated_at"]
        if token is not None:  # a resolved token keeps its token
            values["token"] = token
            update.append("token")
        self._upsert(values, update=update)

    def attach(
        self,
        issue_id: uuid.UUID,
        first: LedgerEntry,
        placement: Placement,
        now: datetime,
        note: Note | None = None,
    ) -> None:
        """Record a later report of `first`'s cluster in the state of `first`'s request and,
        in the same transaction, the note owed for it (when `note`)."""
        if first.state not in DONE:
            raise ValueError(f"not a final ledger state: {first.state!r}")
        placed = placement.values()
        values: dict[str, Any] = {
            "issue_id": issue_id,
            "service_code": first.service_code,
            "state": first.state,
            "service_request_id": first.service_request_id,
            "token": first.token,
            "intent_at": now,
            "updated_at": now,
            **placed,
        }
        update = ["service_code", "state", "service_request_id", "token", "updated_at", *placed]
        with self._guard("write"), self._engine.begin() as connection:
            connection.execute(self._upsert_statement(ledger_table, values, update))
            if note is not None:
                said = asdict(note)
                owed = {"issue_id": issue_id, "owed_at": now, **said}
                connection.execute(self._upsert_statement(notes_table, owed, list(said)))

    def owed_notes(
        self, limit: int | None = None, cluster_id: uuid.UUID | None = None
    ) -> list[OwedNote]:
        """The notes owed on requests that have their id (of the cluster `cluster_id`
        alone, when given), in the order the reports were posted."""
        report, anchor = ledger_table.alias("report"), ledger_table.alias("anchor")
        note = notes_table
        query = (
            select(
                note.c.issue_id,
                report.c.cluster_id,
                anchor.c.service_request_id,
                report.c.posted_at,
                note.c.description,
                note.c.media_url,
            )
            .join(report, report.c.issue_id == note.c.issue_id)
            .join(anchor, anchor.c.issue_id == report.c.cluster_id)
            .where(anchor.c.state == FILED)
            .order_by(report.c.posted_at, note.c.issue_id)
            .limit(limit)
        )
        if cluster_id is not None:
            query = query.where(report.c.cluster_id == cluster_id)
        with self._guard("read"), self._engine.connect() as connection:
            return [OwedNote(**row) for row in connection.execute(query).mappings()]

    def noted(self, issue_id: uuid.UUID, update_id: str | None, now: datetime) -> None:
        """The server accepted the note of `issue_id`: record its id, and owe it no more."""
        values: dict[str, Any] = {"updated_at": now}
        if update_id is not None:
            values["update_id"] = update_id
        statement = (
            ledger_table.update().where(ledger_table.c.issue_id == issue_id).values(**values)
        )
        with self._guard("write"), self._engine.begin() as connection:
            connection.execute(statement)
            connection.execute(delete(notes_table).where(notes_table.c.issue_id == issue_id))

    def drop_note(self, issue_id: uuid.UUID) -> None:
        """Owe the note of `issue_id` no more (the server refused it); the report stays."""
        with self._guard("write"), self._engine.begin() as connection:
            connection.execute(delete(notes_table).where(notes_table.c.issue_id == issue_id))

    def forget_notes(self, post_id: str | None = None, author_key: str | None = None) -> int:
        """Drop the notes owed for a forgotten post or author; returns how many."""
        if post_id is None and author_key is None:
            return 0
        whose = (
            notes_table.c.post_id == post_id
            if post_id is not None
            else notes_table.c.author_key == author_key
        )
        with self._guard("write"), self._engine.begin() as connection:
            return connection.execute(delete(notes_table).where(whose)).rowcount or 0

    def drop_notes_before(self, cutoff: datetime) -> int:
        """Drop the notes still owed for reports posted before `cutoff` (retention: the
        ledger keeps no post's text longer than the sinks do); returns how many."""
        old = select(ledger_table.c.issue_id).where(ledger_table.c.posted_at < cutoff)
        statement = delete(notes_table).where(notes_table.c.issue_id.in_(old))
        with self._guard("write"), self._engine.begin() as connection:
            return connection.execute(statement).rowcount or 0

    def resolve_token(self, token: str, service_request_id: str, now: datetime) -> int:
        """Every row still holding `token` (a cluster's first report and those attached
        to it) becomes ``filed`` with the id; returns how many rows changed."""
        statement = (
            ledger_table.update()
            .where(ledger_table.c.state == TOKEN, ledger_table.c.token == token)
            .values(state=FILED, service_request_id=service_request_id, updated_at=now)
        )
        with self._guard("write"), self._engine.begin() as connection:
            return connection.execute(statement).rowcount or 0

    def forget_intent(self, issue_id: uuid.UUID) -> None:
        """Drop a ``posting`` row: the server said for certain that it filed nothing."""
        statement = delete(ledger_table).where(
            ledger_table.c.issue_id == issue_id, ledger_table.c.state == POSTING
        )
        with self._guard("write"), self._engine.begin() as connection:
            connection.execute(statement)

    def record_forget(self, subject: str, now: datetime) -> bool:
        """Record that a post or an author was forgotten; False when it already was."""
        insert = self._dialect_insert(forgotten_table).values(subject=subject, forgotten_at=now)
        with self._guard("write"), self._engine.begin() as connection:
            result = connection.execute(insert.on_conflict_do_nothing())
        return bool(result.rowcount)

    def pending_tokens(self, limit: int | None = None) -> list[LedgerEntry]:
        """Rows in state ``token``, the least recently tried first."""
        query = (
            select(ledger_table)
            .where(ledger_table.c.state == TOKEN)
            .order_by(ledger_table.c.updated_at, ledger_table.c.issue_id)
            .limit(limit)
        )
        with self._guard("read"), self._engine.connect() as connection:
            return [LedgerEntry(**row) for row in connection.execute(query).mappings()]

    def recent_reports(
        self, window: timedelta, keys: Collection[str] | None = None
    ) -> list[tuple[Report, uuid.UUID]]:
        """The clustered rows of each `city:category` (of `keys`, when given) posted within
        `window` of its newest, with the first reports of their clusters: first reports
        first, then by post time."""
        table = ledger_table
        clustered = table.c.cluster_id.is_not(None)
        newest = (
            select(table.c.cluster_key, func.max(table.c.posted_at))
            .where(clustered)
            .group_by(table.c.cluster_key)
        )
        if keys is not None:
            newest = newest.where(table.c.cluster_key.in_(sorted(keys)))
        rows: dict[uuid.UUID, Any] = {}
        with self._guard("read"), self._engine.connect() as connection:
            for key, latest in connection.execute(newest).all():
                query = select(table).where(
                    clustered, table.c.cluster_key == key, table.c.posted_at >= latest - window
                )
                rows.update((row.issue_id, row) for row in connection.execute(query).mappings())
            anchors = {row.cluster_id for row in rows.values()} - rows.keys()
            if anchors:
                query = select(table).where(table.c.issue_id.in_(anchors))
                rows.update((row.issue_id, row) for row in connection.execute(query).mappings())
        ordered = sorted(
            rows.values(),
            key=lambda r: (r.cluster_id != r.issue_id, r.posted_at, str(r.issue_id)),
        )
        return [
            (Report(r.issue_id, r.cluster_key, r.lat, r.lon, r.posted_at), r.cluster_id)
            for r in ordered
        ]

    def touch(self, token: str, now: datetime) -> None:
        """Mark the rows of a token still pending as tried now: they go to the back of the
        queue (all of them, so a large cluster cannot hold the front)."""
        statement = (
            ledger_table.update()
            .where(ledger_table.c.state == TOKEN, ledger_table.c.token == token)
            .values(updated_at=now)
        )
        with self._guard("write"), self._engine.begin() as connection:
            connection.execute(statement)

    def _upsert(self, values: dict[str, Any], update: Any) -> None:
        statement = self._upsert_statement(ledger_table, values, update)
        with self._guard("write"), self._engine.begin() as connection:
            connection.execute(statement)

    def _upsert_statement(self, table: Table, values: dict[str, Any], update: Any) -> Any:
        insert = self._dialect_insert(table).values(**values)
        return insert.on_conflict_do_update(
            index_elements=[table.c.issue_id],
            set_={name: insert.excluded[name] for name in update},
        )
