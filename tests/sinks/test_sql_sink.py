"""The SQL sink against real databases: a SQLite file and the session's PostgreSQL."""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import Engine, RowMapping, event, inspect, make_url, select, text
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
)

from overheard.errors import ConfigError, TransientError
from overheard.model import Issue
from overheard.profile import ClustersProfile
from overheard.settings import DatabaseSettings, Settings
from overheard.sinks.base import WRITTEN, Rejected, Sink
from overheard.sinks.sql import SqlSink, from_settings, migrate
from overheard.sinks.sql.failures import Failure, classify
from overheard.sinks.sql.tables import issues as issues_table
from overheard.sinks.sql.tables import metadata
from tests.factories import POTHOLE_TEXT, make_issue
from tests.support.overheard_daemon import TcpProxy
from tests.support.processes import free_ports


def make_issues(count: int, **changes: Any) -> list[Issue]:
    return [make_issue(f"t3_wp{n:03d}", **changes) for n in range(count)]


# -- databases ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/var/overheard.db"
    return request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    """An engine of the test's own, to look at what the sink wrote."""
    engine = sqlalchemy.create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sink(db_url: str) -> Iterator[SqlSink]:
    opened = SqlSink(db_url)
    opened.open()
    yield opened
    opened.close()


def stored(db: Engine) -> dict[uuid.UUID, RowMapping]:
    with db.connect() as connection:
        return {row.id: row for row in connection.execute(select(issues_table)).mappings()}


def with_setting(postgres_schema_url: str, setting: str) -> str:
    """The same PostgreSQL database, with a server setting for the session."""
    parsed = make_url(postgres_schema_url)
    options = f"{parsed.query['options']} -c{setting}"
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


def with_lock_timeout(url: str) -> str:
    """The same database, where a writer gives up after 200 ms waiting for a lock."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.update_query_dict({"timeout": "0.2"}).render_as_string(hide_password=False)
    return with_setting(url, "lock_timeout=200")


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine sends while the block runs."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement.strip())

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


# -- schema ------------------------------------------------------------------------------------


def test_is_a_sink_named_sql() -> None:
    sink = SqlSink("sqlite://")
    assert isinstance(sink, Sink)
    assert sink.name == "sql"


def test_is_made_from_the_database_settings(tmp_path: Path) -> None:
    production = DatabaseSettings(
        url="postgresql+psycopg://overheard@db.example.org/overheard",
        password=SecretStr("s3cret-pw"),
    )
    assert repr(from_settings(Settings(database=production))) == (
        "SqlSink('postgresql+psycopg://overheard:***@db.example.org/overheard')"
    )
    embedded = from_settings(Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path}/o.db")))
    embedded.open()
    assert embedded.write([make_issue()]) == [WRITTEN]
    embedded.close()


def test_open_migrates_to_head(db_url: str, db: Engine, sink: SqlSink) -> None:
    assert migrate.current_revision(db) == migrate.head_revision() == "0004"
    tables = set(inspect(db).get_table_names())
    assert {"issues", migrate.VERSION_TABLE} <= tables
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(db).get_indexes("issues")}
    assert indexes == {
        "ix_issues_author_key": ["author_key"],
        "ix_issues_city_category": ["city", "category"],
        "ix_issues_cluster_id": ["cluster_id"],
        "ix_issues_post_id": ["post_id"],
    }
    if db_url.startswith("sqlite"):
        assert Path(str(make_url(db_url).database)).is_file()


def test_migrations_build_the_schema_the_code_writes(db: Engine, sink: SqlSink) -> None:
    with db.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": migrate.VERSION_TABLE}
        )
        assert compare_metadata(context, metadata) == []


def test_reopening_changes_nothing(db_url: str, db: Engine, sink: SqlSink) -> None:
    sink.write([make_issue()])
    before = stored(db)
    again = SqlSink(db_url)
    with statements() as sent:
        again.open()
    again.close()
    changes = [
        s
        for s in sent
        if s.split()[0].upper() in {"CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE"}
    ]
    assert changes == []
    assert migrate.current_revision(db) == "0004"
    assert stored(db) == before


def test_processes_starting_together_migrate_once(db_url: str, db: Engine) -> None:
    sinks = [SqlSink(db_url) for _ in range(4)]
    start = threading.Barrier(len(sinks))
    errors: list[BaseException] = []

    def open_at_once(each: SqlSink) -> None:
        start.wait()
        try:
            each.open()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=open_at_once, args=(each,)) for each in sinks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for each in sinks:
        each.close()
    assert errors == []
    with db.connect() as connection:
        versions = connection.execute(text(f"SELECT version_num FROM {migrate.VERSION_TABLE}"))
        assert versions.scalars().all() == ["0004"]


# -- writing -----------------------------------------------------------------------------------


def test_writes_one_row_per_issue(db: Engine, sink: SqlSink) -> None:
    pothole, unlocated = make_issue(), make_issue("t3_wp56a", located=False)
    assert sink.write([pothole, unlocated]) == [WRITTEN, WRITTEN]

    rows = stored(db)
    assert set(rows) == {pothole.id, unlocated.id}
    row = rows[pothole.id]
    assert row.id == Issue.id_for("baltimore", "reddit:t3_wp55z")
    assert (row.city, row.post_id, row.platform) == ("baltimore", "reddit:t3_wp55z", "reddit")
    assert row.post_url == "https://www.reddit.com/r/baltimore/comments/wp55z/"
    assert row.post_created_at == datetime(2012, 7, 19, 13, 5, tzinfo=UTC)
    assert row.written_at.utcoffset() == timedelta(0)
    assert row.text == POTHOLE_TEXT
    assert (row.category, row.service_code) == ("pothole", "TRM-Pothole Repair")
    assert (row.complaint_score, row.category_score, row.locality_score) == (0.93, 0.88, 0.97)
    assert (row.lat, row.lon, row.location_precision) == (39.2906, -76.5790, "intersection")
    assert (row.location_source, row.location_confidence) == ("gazetteer", 0.85)
    span = POTHOLE_TEXT[row.location_span_start : row.location_span_end]
    assert span == row.location_span_text == "Eastern Ave near Linwood"
    assert (row.addresses_city, row.names_city, row.urgent) == (False, False, False)
    assert row.decided_by == "analysis:complaint-model"
    assert row.explanation == list(pothole.explanation)
    assert (row.classifier_version, row.profile_version, row.schema_version) == (
        "0.1.0",
        "2026.11.0",
        1,
    )
    assert Issue.model_validate(row.issue) == pothole
    assert rows[unlocated.id].lat is None and rows[unlocated.id].location_precision is None


def test_an_empty_batch_writes_nothing(db: Engine, sink: SqlSink) -> None:
    assert sink.write([]) == []
    assert stored(db) == {}


def test_a_batch_is_one_insert(sink: SqlSink) -> None:
    with statements() as sent:
        outcomes = sink.write(make_issues(25))
    assert outcomes == [WRITTEN] * 25
    inserts = [s for s in sent if s.upper().startswith("INSERT")]
    assert len(inserts) == 1
    assert inserts[0].startswith("INSERT INTO issues")


def test_a_redelivered_batch_changes_nothing(db: Engine, sink: SqlSink) -> None:
    batch = make_issues(5)
    assert sink.write(batch) == [WRITTEN] * 5
    first = stored(db)
    assert sink.write(batch) == [WRITTEN] * 5
    assert stored(db) == first


def test_a_batch_mixing_new_and_written_issues(db: Engine, sink: SqlSink) -> None:
    a, b, c, d = make_issues(4)
    sink.write([a, b])
    first = stored(db)
    assert sink.write([b, c, a, d, c]) == [WRITTEN] * 5
    rows = stored(db)
    assert set(rows) == {a.id, b.id, c.id, d.id}
    assert rows[a.id] == first[a.id] and rows[b.id] == first[b.id]
    assert rows[c.id].written_at > first[a.id].written_at


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(deliveries=st.lists(st.lists(st.integers(0, 5), max_size=6), min_size=1, max_size=6))
def test_any_redeliveries_leave_one_row_per_issue(
    db: Engine, sink: SqlSink, deliveries: list[list[int]]
) -> None:
    pool = make_issues(6)
    with db.begin() as connection:
        connection.execute(issues_table.delete())
    for batch in deliveries:
        assert sink.write([pool[i] for i in batch]) == [WRITTEN] * len(batch)
    delivered = {pool[i].id for batch in deliveries for i in batch}
    with db.connect() as connection:
        ids = connection.execute(select(issues_table.c.id)).scalars().all()
    assert sorted(ids) == sorted(delivered)


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        (
            {"category": "pothole / road surface / sinkhole / utility cut / " * 2},
            "ck_issues_category_length",
        ),
        ({"service_code": ""}, "ck_issues_service_code_length"),
    ],
    ids=["category-too-long", "empty-service-code"],
)
def test_a_refused_row_is_rejected_and_its_batch_mates_written(
    db: Engine, sink: SqlSink, changes: dict[str, Any], constraint: str
) -> None:
    good, other = make_issues(2)
    bad = make_issue("t3_wp9zz", **changes)
    outcomes = sink.write([good, bad, other])
    assert outcomes[0] == outcomes[2] == WRITTEN
    assert isinstance(outcomes[1], Rejected)
    assert outcomes[1].reason.startswith("the database refused the issue: ")
    assert constraint in outcomes[1].reason
    assert set(stored(db)) == {good.id, other.id}

    # A redelivery of the same batch is judged the same way and changes nothing.
    assert sink.write([good, bad, other]) == outcomes
    assert set(stored(db)) == {good.id, other.id}


# -- failures ----------------------------------------------------------------------------------


@contextmanager
def table_locked(url: str) -> Iterator[None]:
    """Another writer holding the issues table until the block ends."""
    if make_url(url).get_backend_name() == "sqlite":
        holder = sqlite3.connect(str(make_url(url).database), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("LOCK TABLE issues IN EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


def test_a_locked_table_is_transient_and_the_retry_writes(db_url: str, db: Engine) -> None:
    sink = SqlSink(with_lock_timeout(db_url))
    sink.open()
    batch = make_issues(3)
    with table_locked(db_url), pytest.raises(TransientError, match="cannot write to"):
        sink.write(batch)
    assert stored(db) == {}
    assert sink.write(batch) == [WRITTEN] * 3
    assert len(stored(db)) == 3
    sink.close()


def test_an_unreachable_server_is_transient_and_the_password_stays_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (port,) = free_ports(1)
    sink = SqlSink(f"postgresql+psycopg://overheard:s3cret-pw@127.0.0.1:{port}/overheard")
    with caplog.at_level(logging.DEBUG), pytest.raises(TransientError) as raised:
        sink.open()
    assert "Connection refused" in str(raised.value)
    assert "overheard:***@127.0.0.1" in str(raised.value)
    with pytest.raises(TransientError):
        sink.write([make_issue()])
    sink.close()
    for shown in (str(raised.value), repr(sink), caplog.text):
        assert "s3cret-pw" not in shown


@pytest.mark.postgres
def test_a_server_going_away_is_transient_and_the_retry_writes(postgres_schema_url: str) -> None:
    url = make_url(postgres_schema_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    sink = SqlSink(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    sink.open()
    assert sink.write(make_issues(2)) == [WRITTEN] * 2

    proxy.stop()
    later = make_issues(4)[2:]
    with pytest.raises(TransientError):
        sink.write(later)

    proxy.start()
    assert sink.write(later) == [WRITTEN] * 2
    assert sink.count_issues("baltimore") == 4
    sink.close()
    proxy.stop()


@pytest.mark.postgres
def test_a_serialization_failure_is_transient(postgres_schema_url: str) -> None:
    """Under SERIALIZABLE, ON CONFLICT DO NOTHING cannot skip a row it could not see."""
    sink = SqlSink(with_setting(postgres_schema_url, "default_transaction_isolation=serializable"))
    sink.open()
    issue = make_issue()
    sink.write([issue])
    other = sqlalchemy.create_engine(postgres_schema_url)
    with other.begin() as connection:
        row = connection.execute(select(issues_table)).mappings().one()
        connection.execute(issues_table.delete())

    # A concurrent writer inserts the same issue; it commits while the sink waits on it.
    with other.connect() as connection:
        connection.execute(issues_table.insert().values(**row))
        threading.Timer(0.3, connection.commit).start()
        with pytest.raises(TransientError, match="could not serialize"):
            sink.write([issue])
    assert sink.write([issue]) == [WRITTEN]
    sink.close()
    other.dispose()


def test_a_read_only_sqlite_file_is_not_transient(tmp_path: Path) -> None:
    """A read-only database is a setup to fix, not a condition that passes by itself."""
    path = tmp_path / "overheard.db"
    writable = SqlSink(f"sqlite:///{path}")
    writable.open()
    writable.close()
    read_only = SqlSink(f"sqlite:///file:{path}?mode=ro&uri=true")
    read_only.open()  # already at head: nothing to write
    with pytest.raises(OperationalError, match="readonly database"):
        read_only.write([make_issue()])
    read_only.close()


def _wrapped(kind: type[DBAPIError], orig: Exception) -> Any:
    return kind("INSERT INTO issues ...", {}, orig)


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (_wrapped(OperationalError, psycopg.errors.DeadlockDetected()), Failure.TRANSIENT),
        (_wrapped(OperationalError, psycopg.errors.SerializationFailure()), Failure.TRANSIENT),
        (_wrapped(OperationalError, psycopg.errors.QueryCanceled()), Failure.TRANSIENT),
        (_wrapped(OperationalError, psycopg.errors.LockNotAvailable()), Failure.TRANSIENT),
        (_wrapped(OperationalError, psycopg.errors.TooManyConnections()), Failure.TRANSIENT),
        (_wrapped(OperationalError, psycopg.errors.AdminShutdown()), Failure.TRANSIENT),
        (
            _wrapped(OperationalError, psycopg.OperationalError("connection failed")),
            Failure.TRANSIENT,
        ),
        (_wrapped(IntegrityError, psycopg.errors.CheckViolation()), Failure.ROW),
        (_wrapped(IntegrityError, psycopg.errors.NotNullViolation()), Failure.ROW),
        (_wrapped(DataError, psycopg.errors.StringDataRightTruncation()), Failure.ROW),
        (_wrapped(DataError, psycopg.errors.NumericValueOutOfRange()), Failure.ROW),
        (_wrapped(OperationalError, psycopg.errors.ProgramLimitExceeded()), Failure.ROW),
        (_wrapped(DataError, psycopg.DataError("cannot contain NUL (0x00) bytes")), Failure.ROW),
        (_wrapped(ProgrammingError, psycopg.errors.UndefinedTable()), Failure.FATAL),
        (
            _wrapped(OperationalError, sqlite3.OperationalError("database is locked")),
            Failure.TRANSIENT,
        ),
    ],
    ids=lambda value: type(value.orig).__name__ if isinstance(value, DBAPIError) else value.value,
)
def test_classifies_database_errors(error: DBAPIError, failure: Failure) -> None:
    assert classify(error) is failure


def test_a_lost_connection_is_transient_whatever_the_error() -> None:
    error = ProgrammingError(
        "SELECT 1", {}, psycopg.errors.UndefinedTable(), connection_invalidated=True
    )
    assert classify(error) is Failure.TRANSIENT


@pytest.mark.parametrize(
    "url",
    [
        "not a database url s3cret-pw",
        "mysql+pymysql://u:s3cret-pw@db/overheard",
        "postgresql+nosuchdriver://u:s3cret-pw@db/overheard",
    ],
)
def test_unusable_urls_are_config_errors_that_hide_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        SqlSink(url)
    assert "s3cret-pw" not in str(raised.value)


# -- reading -----------------------------------------------------------------------------------


def test_counts_for_the_summary(sink: SqlSink) -> None:
    lights = [
        make_issue(f"t3_sl{n}", category="streetlight", service_code="BGE-StLight(s) Out")
        for n in range(2)
    ]
    elsewhere = make_issue(city="washington")
    sink.write([*make_issues(3), *lights, elsewhere])
    assert sink.count_issues("baltimore") == 5
    assert sink.counts_by_category("baltimore") == {"pothole": 3, "streetlight": 2}
    assert list(sink.counts_by_category("baltimore")) == ["pothole", "streetlight"]
    assert sink.count_issues("annapolis") == 0
    assert sink.counts_by_category("annapolis") == {}


# -- clusters ----------------------------------------------------------------------------------

CLUSTERS = ClustersProfile(distance_m=60, window_hours=168)


def north_of(issue: Issue, metres: float) -> Issue:
    assert issue.location is not None
    location = issue.location.model_copy(update={"lat": issue.location.lat + metres / 111_195.0})
    return issue.model_copy(update={"location": location})


def test_rows_name_their_cluster_and_a_restart_keeps_them(db_url: str, db: Engine) -> None:
    first, second = make_issue("t3_k1"), north_of(make_issue("t3_k2"), 40)
    far, unlocated = north_of(make_issue("t3_k3"), 400), make_issue("t3_k4", located=False)
    sink = SqlSink(db_url, clusters=CLUSTERS)
    sink.open()
    try:
        assert sink.write([first, second, far, unlocated]) == [WRITTEN] * 4
    finally:
        sink.close()
    again = SqlSink(db_url, clusters=CLUSTERS)  # a new process: its clusters from the rows
    again.open()
    try:
        later = north_of(make_issue("t3_k5"), -20)
        assert again.write([second, later]) == [WRITTEN, WRITTEN]
    finally:
        again.close()
    rows = stored(db)
    assert {issue.id: rows[issue.id].cluster_id for issue in (first, second, later)} == {
        first.id: first.id,
        second.id: first.id,
        later.id: first.id,
    }
    assert rows[far.id].cluster_id == far.id
    assert rows[unlocated.id].cluster_id == unlocated.id


def test_without_clusters_the_column_stays_empty(db: Engine, sink: SqlSink) -> None:
    issue = make_issue()
    assert sink.write([issue]) == [WRITTEN]
    assert stored(db)[issue.id].cluster_id is None


def test_the_sql_sink_clusters_with_the_city_profile(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/overheard.db"
    sink = from_settings(Settings(database=DatabaseSettings(url=url)))
    sink.open()
    try:
        first, second = make_issue("t3_f1"), make_issue("t3_f2")
        assert sink.write([first, second]) == [WRITTEN, WRITTEN]
    finally:
        sink.close()
    engine = sqlalchemy.create_engine(url)
    try:
        assert stored(engine)[second.id].cluster_id == first.id
    finally:
        engine.dispose()
