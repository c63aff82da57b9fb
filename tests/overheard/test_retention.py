"""Retention: text older than each sink's `text_days` dropped, the issues kept; explicit clocks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner

from overheard.audit import RETENTION, AuditLog
from overheard.cli import app
from overheard.model import Issue
from overheard.retention import DAEMON_ACTOR, Housekeeping, apply_retention
from overheard.settings import (
    DatabaseSettings,
    IngestSettings,
    JsonlSettings,
    PrivacySettings,
    RetentionSettings,
    Settings,
)
from overheard.sinks.base import WRITTEN, Sink
from overheard.sinks.registry import create_sink
from overheard.sinks.sql.tables import issues as issues_table
from overheard.testing.sink_kit import make_issue

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
#: Post ages in days: just inside and just past 30 and 90 days.
AGES = (1, 29.9, 30.1, 89.9, 90.1, 400)


def aged(n: int, days: float, now: datetime = NOW) -> Issue:
    issue = make_issue(n)
    post = issue.post.model_copy(update={"created_at": now - timedelta(days=days)})
    return issue.model_copy(update={"post": post})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/overheard.db"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        sinks=["sql", "jsonl"],
        database=DatabaseSettings(url=db_url),
        jsonl=JsonlSettings(directory=tmp_path / "jsonl"),
        ingest=IngestSettings(checkpoint_dir=tmp_path / "checkpoints"),
        privacy=PrivacySettings(author_key=SecretStr("retention-test-key")),
        retention=RetentionSettings(text_days={"sql": 90, "jsonl": 30}),
    )


@pytest.fixture
def sinks(settings: Settings) -> Iterator[list[Sink]]:
    made = [create_sink(name, settings) for name in settings.sinks]
    for sink in made:
        sink.open()
        batch = [aged(n, days) for n, days in enumerate(AGES)]
        assert sink.write(batch) == [WRITTEN] * len(batch)
    yield made
    for sink in made:
        sink.close()


def sql_texts(settings: Settings) -> dict[float, Any]:
    engine = sqlalchemy.create_engine(settings.database.effective_url())
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(issues_table)).mappings().all()
    finally:
        engine.dispose()
    by_post = {row["post_id"]: row for row in rows}
    return {days: by_post[aged(n, days).post.id] for n, days in enumerate(AGES)}


def jsonl_lines(settings: Settings) -> dict[str, dict[str, Any]]:
    lines = [
        json.loads(line)
        for path in settings.jsonl.directory.glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    return {line["post"]["id"]: line for line in lines}


def test_drops_exactly_the_text_past_each_sinks_retention(
    settings: Settings, sinks: list[Sink]
) -> None:
    audit_log = AuditLog.from_settings(settings)
    changed = apply_retention(sinks, settings.retention, audit_log, actor="test", now=NOW)
    assert changed == {"sql": 2, "jsonl": 4}

    rows = sql_texts(settings)
    assert {days for days, row in rows.items() if row["text"] is None} == {90.1, 400}
    for days in (90.1, 400):
        row = rows[days]
        assert (row["author_key"], row["text_dropped_by"]) == (None, "retention")
        assert row["lat"] is not None and row["category"] and row["post_url"]
    assert all(rows[d]["author_key"] is not None for d in (1, 29.9, 30.1, 89.9))

    lines = jsonl_lines(settings)
    assert len(lines) == len(AGES), "retention keeps every issue"
    # 30 days for jsonl: the posts 30.1 days old and older lose their text.
    without_text = {
        d for n, d in enumerate(AGES) if "text" not in lines[aged(n, d).post.id]["post"]
    }
    assert without_text == {30.1, 89.9, 90.1, 400}

    assert apply_retention(sinks, settings.retention, audit_log, actor="test", now=NOW) == {
        "sql": 0,
        "jsonl": 0,
    }
    entries = audit_log.entries(RETENTION)
    assert [(e.sink, e.detail["changed"], e.at) for e in entries] == [
        ("sql", 2, NOW),
        ("jsonl", 4, NOW),
        ("sql", 0, NOW),
        ("jsonl", 0, NOW),
    ]
    assert entries[0].detail["cutoff"] == (NOW - timedelta(days=90)).isoformat()


def test_a_later_clock_drops_more(settings: Settings, sinks: list[Sink]) -> None:
    audit_log = AuditLog.from_settings(settings)
    later = NOW + timedelta(days=1)
    assert apply_retention(sinks, settings.retention, audit_log, actor="t", now=later)["sql"] == 3


def test_sinks_without_retention_are_left_alone(settings: Settings, sinks: list[Sink]) -> None:
    audit_log = AuditLog.from_settings(settings)
    only_sql = RetentionSettings(text_days={"sql": 90})
    assert apply_retention(sinks, only_sql, audit_log, actor="t", now=NOW) == {"sql": 2}
    assert all("text" in line["post"] for line in jsonl_lines(settings).values())


def test_the_daemon_thread_runs_a_round_and_stops_when_told(
    settings: Settings, sinks: list[Sink]
) -> None:
    stop = threading.Event()
    chores = Housekeeping(sinks, settings, stop, clock=lambda: NOW)
    chores.start()
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while chores.rounds == 0 and datetime.now(UTC) < deadline:
        stop.wait(0.05)
    stop.set()
    chores.join(timeout=10)
    assert not chores.is_alive()
    assert chores.rounds == 1  # every_h is a day: one round, then it waited for the stop
    entries = AuditLog.from_settings(settings).entries(RETENTION)
    assert {(e.actor, e.sink) for e in entries} == {(DAEMON_ACTOR, "sql"), (DAEMON_ACTOR, "jsonl")}


def test_a_failing_round_is_logged_and_does_not_stop_the_thread(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        name = "sql"

        def open(self) -> None: ...

        def write(self, issues: Any) -> list[Any]:
            return []

        def close(self) -> None: ...

        def drop_text_before(self, cutoff: datetime) -> int:
            raise RuntimeError("disk on fire")

    chores = Housekeeping([Broken()], settings, threading.Event(), clock=lambda: NOW)
    chores.round()
    chores.round()
    assert chores.rounds == 2
    assert caplog.text.count("housekeeping failed") == 2


def test_the_command_applies_it(tmp_path: Path) -> None:
    env = {
        "OVERHEARD_SINKS": '["sql"]',
        "OVERHEARD_DATABASE__URL": f"sqlite:///{tmp_path}/overheard.db",
        "OVERHEARD_RETENTION__TEXT_DAYS": '{"sql": 90}',
    }
    settings = Settings(
        sinks=["sql"], database=DatabaseSettings(url=env["OVERHEARD_DATABASE__URL"])
    )
    sink = create_sink("sql", settings)
    sink.open()
    # the command reads the clock: ages count from now, not from the fixed NOW
    now = datetime.now(UTC)
    sink.write([aged(n, days, now) for n, days in enumerate(AGES)])
    sink.close()
    result = CliRunner().invoke(app, ["retention", "apply"], env=env)
    assert result.exit_code == 0, result.output
    assert "sql: text dropped from 2 record(s)" in result.output
    result = CliRunner().invoke(app, ["retention", "apply"], env=env)
    assert "sql: text dropped from 0 record(s)" in result.output
