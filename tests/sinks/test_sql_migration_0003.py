"""Migration 0003 on a database that already holds issues with raw authors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from alembic import command
from sqlalchemy import Column, Engine, MetaData, Table, Uuid, inspect, select

from overheard.model import Author
from overheard.sinks.sql import migrate
from overheard.sinks.sql.sink import _row
from overheard.sinks.sql.tables import Json, UtcDateTime
from overheard.testing.sink_kit import make_issue


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/overheard.db"
    else:
        url = str(request.getfixturevalue("postgres_schema_url"))
    made = sqlalchemy.create_engine(url)
    yield made
    made.dispose()


def to(engine: Engine, revision: str, *, down: bool = False) -> None:
    with engine.begin() as connection:
        config = migrate.alembic_config(connection)
        (command.downgrade if down else command.upgrade)(config, revision)


def old_row() -> dict[str, Any]:
    """A row as 0002's code wrote it: raw author id and handle, the profile location inside."""
    issue = make_issue(3)
    author = Author(id="t2_resident3", handle="resident_3", profile_location="Canton")
    issue = issue.model_copy(update={"post": issue.post.model_copy(update={"author": author})})
    row = _row(issue, datetime(2026, 11, 3, tzinfo=UTC))
    del row["author_key"], row["author_key_id"]
    return {**row, "author_id": "t2_resident3", "author_handle": "resident_3"}


def reflected(engine: Engine) -> Table:
    """The issues table as the database has it, with the sink's types where reflection
    cannot know them (SQLite stores UUIDs and JSON as text)."""
    return Table(
        "issues",
        MetaData(),
        Column("id", Uuid, primary_key=True),
        Column("explanation", Json),
        Column("issue", Json),
        Column("post_created_at", UtcDateTime),
        Column("written_at", UtcDateTime),
        autoload_with=engine,
    )


def test_existing_rows_lose_their_raw_author_and_keep_the_rest(engine: Engine) -> None:
    to(engine, "0002")
    issues = reflected(engine)
    with engine.begin() as connection:
        connection.execute(issues.insert().values(**old_row()))

    to(engine, "head")
    columns = {c["name"] for c in inspect(engine).get_columns("issues")}
    assert {"author_id", "author_handle"}.isdisjoint(columns)
    assert {"author_key", "author_key_id", "text_dropped_at", "text_dropped_by"} <= columns
    migrated = reflected(engine)
    with engine.connect() as connection:
        row = connection.execute(select(migrated)).mappings().one()
    assert row["author_key"] is None and row["text"] == make_issue(3).post.text
    issue = row["issue"] if isinstance(row["issue"], dict) else json.loads(row["issue"])
    assert issue["post"]["author"] == {}
    dumped = json.dumps(dict(row), default=str)
    assert "t2_resident3" not in dumped and "resident_3" not in dumped and "Canton" not in dumped

    to(engine, "0002", down=True)
    columns = {c["name"] for c in inspect(engine).get_columns("issues")}
    assert {"author_id", "author_handle"} <= columns and "author_key" not in columns
