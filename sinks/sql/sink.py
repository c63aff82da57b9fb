"""The SQL sink: one row per issue, in SQLite (embedded) or PostgreSQL (production)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import sqlalchemy
from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    Insert,
    event,
    func,
    make_url,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from overheard.clusters import Clusterer, Report
from overheard.errors import ConfigError, TransientError
from overheard.model import Issue
from overheard.profile import ClustersProfile, load_profile
from overheard.sinks.base import WRITTEN, BaseSink, Outcome, Rejected, without_text
from overheard.sinks.sql import migrate
from overheard.sinks.sql.failures import Failure, classify, describe
from overheard.sinks.sql.tables import issues as issues_table

if TYPE_CHECKING:
    from overheard.settings import Settings

log = logging.getLogger(__name__)

#: `text_dropped_by`: why a row lost its text and author.
FORGET = "forget"
RETENTION = "retention"


def from_settings(settings: Settings) -> SqlSink:
    """The factory the `overheard.sinks` entry point names: the sink for `[database]`,
    with the password from the environment (OVERHEARD_DATABASE__PASSWORD)."""
    return SqlSink(settings.database.effective_url(), clusters=load_profile(settings.city).clusters)


class SqlSink(BaseSink):
    """Writes each issue as one row of the `issues` table, once.

    A batch is one INSERT ... ON CONFLICT (id) DO NOTHING in one transaction,
    so a redelivered issue changes nothing and counts as written. When the
    database refuses the batch because of a row, the batch is written again
    issue by issue, each in its own SAVEPOINT, to reject only the rows it
    refuses. When the database is unreachable or busy, `write` raises
    `TransientError` and the runtime retries the batch.

    `forget` and `drop_text_before` (retention) empty a row's text and author but keep
    the row, so a redelivered issue still finds its id taken and never brings them back.

    With `clusters` (the profile's `[clusters]`), each row's `cluster_id` names the first
    issue of its cluster (`overheard.clusters`), assigned in the order issues arrive, by a
    `Clusterer` that `open` rebuilds from the rows of the last window.
    """

    name = "sql"

    def __init__(
        self, url: str, *, echo: bool = False, clusters: ClustersProfile | None = None
    ) -> None:
        try:
            self._url = make_url(url)
        except ArgumentError:
            # The message would quote the URL, password and all.
            raise ConfigError(
                "the database URL is not a SQLAlchemy URL "
                "(dialect+driver://user:password@host/database)"
            ) from None
        self._insert = _insert_unless_present(self._url.get_backend_name())
        self._engine = create_engine(self._url, echo=echo)
        self._clusterer = Clusterer(clusters) if clusters is not None else None

    def __repr__(self) -> str:
        return f"SqlSink({self._masked_url!r})"

    @property
    def _masked_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    def open(self) -> None:
        """Create the SQLite file's folder, then migrate the schema to head."""
        make_sqlite_folder(self._url)
        try:
            migrate.upgrade(self._engine)
            self._rebuild_clusters()
        except DBAPIError as exc:
            self._raise_for_batch(exc, "cannot prepare")
        log.info("sql sink ready: %s", self._masked_url)

    def close(self) -> None:
        self._engine.dispose()

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        if not issues:
            return []
        written_at = datetime.now(UTC)
        rows = [_row(issue, written_at) for issue in issues]
        if self._clusterer is not None:
            for issue, row in zip(issues, rows, strict=True):
                row["cluster_id"] = self._clusterer.assign(issue).cluster
        try:
            with self._engine.begin() as connection:
                connection.execute(self._insert, rows)
        except DBAPIError as exc:
            if classify(exc) is not Failure.ROW:
                self._raise_for_batch(exc, "cannot write to")
            log.warning(
                "the database refused a batch of %d issues (%s); writing them one by one",
                len(rows),
                describe(exc),
            )
            return self._write_one_by_one(issues, rows)
        return [WRITTEN] * len(rows)

    def _write_one_by_one(
        self, issues: Sequence[Issue], rows: list[dict[str, Any]]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            with self._engine.begin() as connection:
                for issue, row in zip(issues, rows, strict=True):
                    outcomes.append(self._write_one(connection, issue, row))
        except DBAPIError as exc:
            self._raise_for_batch(exc, "cannot write to")
        return outcomes

    def _write_one(self, connection: Connection, issue: Issue, row: dict[str, Any]) -> Outcome:
        try:
            with connection.begin_nested():
                connection.execute(self._insert, row)
        except DBAPIError as exc:
            if classify(exc) is not Failure.ROW:
                raise
            reason = f"the database refused the issue: {describe(exc)}"
            if self._clusterer is not None:
                self._clusterer.withdraw(issue.id)
            log.warning("rejected issue %s (post %s): %s", issue.id, issue.post.id, reason)
            return Rejected(reason)
        return WRITTEN

    def _rebuild_clusters(self) -> None:
        """Give the clusterer the grouped rows of each city and category posted within the
        window of its newest, and the first rows of their clusters."""
        if self._clusterer is None:
            return
        table = issues_table
        grouped = (
            table.c.cluster_id.is_not(None),
            table.c.location_precision.in_([p.value for p in self._clusterer.precisions]),
        )
        newest = (
            select(table.c.city, table.c.category, func.max(table.c.post_created_at))
            .where(*grouped)
            .group_by(table.c.city, table.c.category)
        )
        columns = (
            table.c.id,
            table.c.city,
            table.c.category,
            table.c.lat,
            table.c.lon,
            table.c.post_created_at,
            table.c.cluster_id,
        )
        rows: dict[Any, Any] = {}
        with self._engine.connect() as connection:
            for city, category, latest in connection.execute(newest).all():
                query = select(*columns).where(
                    *grouped,
                    table.c.city == city,
                    table.c.category == category,
                    table.c.post_created_at >= latest - self._clusterer.window,
                )
                rows.update((row.id, row) for row in connection.execute(query))
            firsts = {row.cluster_id for row in rows.values()} - rows.keys()
            if firsts:
                query = select(*columns).where(table.c.id.in_(firsts))
                rows.update((row.id, row) for row in connection.execute(query))
        ordered = sorted(
            rows.values(), key=lambda r: (r.cluster_id != r.id, r.post_created_at, str(r.id))
        )
        for row in ordered:
            report = Report(
                row.id, f"{row.city}:{row.category}", row.lat, row.lon, row.post_created_at
            )
            self._clusterer.add(report, row.cluster_id)

    def _raise_for_batch(self, exc: DBAPIError, doing: str) -> NoReturn:
        """Raise `TransientError` for a failure that may pass, else `exc` itself."""
        if classify(exc) is Failure.TRANSIENT:
            raise TransientError(f"{doing} {self._masked_url}: {describe(exc)}") from exc
        raise exc

    def forget(self, post_id: str | None = None, author_key: str | None = None) -> int:
        """Drop the text and author of a post, or of every post of one author's pseudonym,
        from its rows (columns and the stored issue's JSON); the issues stay. Returns the rows
        changed: 0 when they were forgotten already."""
        if post_id is None and author_key is None:
            raise ValueError("forget needs a post id or an author key")
        conditions = []
        if post_id is not None:
            conditions.append(issues_table.c.post_id == post_id)
        if author_key is not None:
            conditions.append(issues_table.c.author_key == author_key)
        return self._drop_text(or_(*conditions), FORGET, datetime.now(UTC))

    def drop_text_before(self, cutoff: datetime) -> int:
        """Retention: drop the text and author of posts made before `cutoff`; the issues and
        their locations stay. Returns the rows changed (0 on a repeat)."""
        return self._drop_text(
            issues_table.c.post_created_at < cutoff, RETENTION, datetime.now(UTC)
        )

    def _drop_text(self, which: ColumnElement[bool], by: str, now: datetime) -> int:
        query = select(issues_table.c.id, issues_table.c.issue).where(
            which, issues_table.c.text_dropped_at.is_(None)
        )
        changed = 0
        try:
            with self._engine.begin() as connection:
                for row_id, issue in connection.execute(query).all():
                    connection.execute(
                        issues_table.update()
                        .where(issues_table.c.id == row_id)
                        .values(
                            text=None,
                            author_key=None,
                            author_key_id=None,
                            issue=without_text(issue),
                            text_dropped_at=now,
                            text_dropped_by=by,
                        )
                    )
                    changed += 1
        except DBAPIError as exc:
            self._raise_for_batch(exc, "cannot drop text in")
        return changed

    def count_issues(self, city: str) -> int:
        """How many issues of `city` the database holds."""
        query = select(func.count()).select_from(issues_table).where(issues_table.c.city == city)
        with self._engine.connect() as connection:
            return connection.execute(query).scalar_one()

    def counts_by_category(self, city: str) -> dict[str, int]:
        """Issues of `city` per category, most frequent first."""
        count = func.count().label("n")
        query = (
            select(issues_table.c.category, count)
            .where(issues_table.c.city == city)
            .group_by(issues_table.c.category)
            .order_by(count.desc(), issues_table.c.category)
        )
        with self._engine.connect() as connection:
            return {category: n for category, n in connection.execute(query)}


def make_sqlite_folder(url: URL) -> None:
    """Create the folder of a SQLite database file, which SQLite will not do itself."""
    database = url.database
    if (
        url.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not url.query.get("uri")
    ):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: URL, *, echo: bool = False) -> Engine:
    """An engine for the sink: stale connections are replaced before use, a
    server that does not answer fails the connection after 10 s, and parameters
    (post text, author ids) stay out of error messages and logs unless `echo`
    asks for the SQL.

    SQLite gets real transactions: Python's sqlite3 module would neither begin
    one before DDL nor keep SAVEPOINTs working, so the driver's own transaction
    handling is switched off and every transaction starts with BEGIN IMMEDIATE,
    which takes the write lock up front (a writer waits for the busy timeout
    rather than failing halfway). WAL lets readers, such as an analyst's
    sqlite3 shell, read while the sink writes.
    """
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 10
    try:
        engine = sqlalchemy.create_engine(
            url, echo=echo, pool_pre_ping=True, hide_parameters=not echo, connect_args=connect_args
        )
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(
            f"cannot use database {url.render_as_string(hide_password=True)}: {exc}"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _insert_unless_present(backend: str) -> Insert:
    """INSERT ... ON CONFLICT (id) DO NOTHING, in the backend's dialect."""
    if backend == "postgresql":
        return postgresql.insert(issues_table).on_conflict_do_nothing(
            index_elements=[issues_table.c.id]
        )
    if backend == "sqlite":
        return sqlite.insert(issues_table).on_conflict_do_nothing(
            index_elements=[issues_table.c.id]
        )
    raise ConfigError(f"the sql sink writes to PostgreSQL or SQLite, not {backend!r}")


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    try:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        # Switching a file to WAL needs it to itself, and SQLite does not wait
        # for that. The mode is stored in the file, so the busy connection is
        # another one switching it, or a later connection will.
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
            raise


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _row(issue: Issue, written_at: datetime) -> dict[str, Any]:
    post, location = issue.post, issue.location
    span = location.span if location else None
    return {
        "id": issue.id,
        "city": issue.city,
        "post_id": post.id,
        "platform": post.platform.value,
        "post_url": post.url,
        "post_created_at": post.created_at,
        "author_key": post.author.key,
        "author_key_id": post.author.key_id,
        "text": post.text,
        "category": issue.category.name,
        "service_code": issue.category.service_code,
        "complaint_score": issue.scores.complaint,
        "category_score": issue.scores.category,
        "locality_score": issue.scores.locality,
        "civic_score": issue.scores.civic,
        "lat": location.lat if location else None,
        "lon": location.lon if location else None,
        "location_precision": location.precision.value if location else None,
        "location_source": location.source if location else None,
        "location_confidence": location.confidence if location else None,
        "location_span_text": span.text if span else None,
        "location_span_start": span.start if span else None,
        "location_span_end": span.end if span else None,
        "addresses_city": issue.addresses_city,
        "names_city": issue.names_city,
        "urgent": issue.urgent,
        "to_311": issue.to_311,
        "decided_by": issue.decided_by,
        "explanation": list(issue.explanation),
        "classifier_version": issue.versions.classifier,
        "profile_version": issue.versions.profile,
        "schema_version": issue.schema_version,
        "issue": issue.model_dump(mode="json"),
        "written_at": written_at,
    }
