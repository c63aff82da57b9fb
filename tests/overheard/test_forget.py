"""`overheard forget`: a post's (or an author's) text and author gone from every sink, once,
and recorded; platform deletions forgotten the same way."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner

from overheard.audit import FORGET, AuditLog
from overheard.cli import app
from overheard.forget import DELETION_ACTOR, forget, forget_deletions, noticed_deletions
from overheard.ingest.cursors import CursorStore, Deletion
from overheard.model import Issue
from overheard.privacy import Pseudonymiser
from overheard.settings import (
    DatabaseSettings,
    IngestSettings,
    JsonlSettings,
    Open311Settings,
    PrivacySettings,
    Settings,
)
from overheard.sinks.base import WRITTEN, Sink
from overheard.sinks.registry import create_sink
from overheard.sinks.sql.tables import issues as issues_table
from overheard.testing.open311_process import Open311Server
from overheard.testing.sink_kit import make_issue

AUTHOR_KEY = "forget-test-author-key"
OPEN311_KEY = "forget-test-open311-key"
#: Services of the test server's Baltimore list that need no attribute overheard cannot fill.
CODES = ("BGE-StLight(s) Out", "SW-Dirty Alley", "SW-Graffiti Removal")


def issues() -> list[Issue]:
    """Four posts of four authors, and a fifth by the first post's author (kit n and n + 7)."""
    made = []
    for n in (0, 1, 2, 3, 7):
        issue = make_issue(n, located=True)
        category = issue.category.model_copy(update={"service_code": CODES[n % len(CODES)]})
        made.append(issue.model_copy(update={"category": category}))
    return made


@pytest.fixture(scope="module")
def open311_server() -> Iterator[Open311Server]:
    with Open311Server.start(services="baltimore", api_key=OPEN311_KEY) as running:
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/overheard.db"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def settings(db_url: str, tmp_path: Path, open311_server: Open311Server) -> Settings:
    open311_server.reset()
    return Settings(
        sinks=["sql", "jsonl", "open311"],
        database=DatabaseSettings(url=db_url),
        jsonl=JsonlSettings(directory=tmp_path / "jsonl"),
        open311=Open311Settings(
            endpoint=open311_server.url,
            api_key=SecretStr(OPEN311_KEY),
            ledger_url=f"sqlite:///{tmp_path}/ledger.db",
        ),
        ingest=IngestSettings(checkpoint_dir=tmp_path / "checkpoints"),
        privacy=PrivacySettings(author_key=SecretStr(AUTHOR_KEY)),
    )


@pytest.fixture
def sinks(settings: Settings) -> Iterator[list[Sink]]:
    made = [create_sink(name, settings) for name in settings.sinks]
    for sink in made:
        sink.open()
    yield made
    for sink in made:
        sink.close()


@pytest.fixture
def audit_log(settings: Settings) -> Iterator[AuditLog]:
    log = AuditLog.from_settings(settings)
    yield log
    log.close()


def sql_rows(settings: Settings) -> dict[str, Any]:
    engine = sqlalchemy.create_engine(settings.database.effective_url())
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(issues_table)).mappings().all()
    finally:
        engine.dispose()
    return {row["post_id"]: row for row in rows}


def jsonl_post_ids(settings: Settings) -> list[str]:
    return [
        json.loads(line)["post"]["id"]
        for path in sorted(settings.jsonl.directory.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def ledger_forgotten(tmp_path: Path) -> list[str]:
    with closing(sqlite3.connect(tmp_path / "ledger.db")) as connection:
        return [s for (s,) in connection.execute("SELECT subject FROM open311_forgotten")]


def write_all(sinks: list[Sink], batch: list[Issue]) -> None:
    for sink in sinks:
        assert sink.write(batch) == [WRITTEN] * len(batch), sink.name


def test_forgetting_a_post_empties_it_everywhere_once(
    settings: Settings, sinks: list[Sink], audit_log: AuditLog, tmp_path: Path
) -> None:
    batch = issues()
    write_all(sinks, batch)
    victim = batch[1]
    pseudonymiser = Pseudonymiser.from_settings(settings)

    changed = forget(sinks, audit_log, pseudonymiser, actor="test", post_id=victim.post.id)
    assert changed == {"sql": 1, "jsonl": 1, "open311": 1}

    rows = sql_rows(settings)
    row = rows[victim.post.id]
    assert (row["text"], row["author_key"], row["author_key_id"]) == (None, None, None)
    assert row["text_dropped_by"] == "forget" and row["text_dropped_at"] is not None
    assert (row["category"], row["lat"], row["post_url"]) == (
        victim.category.name,
        victim.location.lat if victim.location else None,
        victim.post.url,
    )
    assert "text" not in row["issue"]["post"] and row["issue"]["post"]["author"] == {}
    others = [i for i in batch if i is not victim]
    assert all(rows[i.post.id]["text"] == i.post.text for i in others)
    assert victim.post.id not in jsonl_post_ids(settings)
    assert sorted(jsonl_post_ids(settings)) == sorted(i.post.id for i in others)
    assert ledger_forgotten(tmp_path) == [f"post:{victim.post.id}"]

    again = forget(sinks, audit_log, pseudonymiser, actor="test", post_id=victim.post.id)
    assert again == {"sql": 0, "jsonl": 0, "open311": 0}
    write_all(sinks, batch)  # redelivered: the forgotten text must not come back
    assert sql_rows(settings)[victim.post.id]["text"] is None
    assert victim.post.id not in jsonl_post_ids(settings)
    # The redelivered post is filed once: the ledger knows it.
    assert len(open311_requests_of(sinks, victim)) == 1

    recorded = audit_log.entries(FORGET)
    assert [(e.post_id, e.actor, e.detail["changed"]) for e in recorded] == [
        (victim.post.id, "test", changed),
        (victim.post.id, "test", again),
    ]


def open311_requests_of(sinks: list[Sink], issue: Issue) -> list[Any]:
    (open311,) = [sink for sink in sinks if sink.name == "open311"]
    entry = open311.ledger_entry(issue.id)  # type: ignore[attr-defined]
    return [entry] if entry is not None else []


def test_forgetting_an_author_empties_all_their_posts(
    settings: Settings, sinks: list[Sink], audit_log: AuditLog, tmp_path: Path
) -> None:
    batch = issues()
    write_all(sinks, batch)
    pseudonymiser = Pseudonymiser.from_settings(settings)
    changed = forget(sinks, audit_log, pseudonymiser, actor="test", author_id="t2_resident0")
    assert changed == {"sql": 2, "jsonl": 2, "open311": 1}
    rows = sql_rows(settings)
    theirs = {batch[0].post.id, batch[4].post.id}
    assert {p for p, row in rows.items() if row["text"] is None} == theirs
    assert set(jsonl_post_ids(settings)).isdisjoint(theirs)
    key = pseudonymiser.key_of("t2_resident0")
    assert ledger_forgotten(tmp_path) == [f"author:{key}"]
    (entry,) = audit_log.entries(FORGET)
    assert entry.author_key == key and entry.post_id is None
    assert "t2_resident0" not in json.dumps(entry.detail)
    again = forget(sinks, audit_log, pseudonymiser, actor="test", author_id="t2_resident0")
    assert again == {"sql": 0, "jsonl": 0, "open311": 0}


def test_platform_deletions_are_forgotten_once(
    settings: Settings, sinks: list[Sink], audit_log: AuditLog
) -> None:
    batch = issues()
    write_all(sinks, batch)
    store = CursorStore(settings.ingest.checkpoint_dir / "live.sqlite")
    store.commit("reddit:comments", {"newest": "t1_x"}, [Deletion(batch[2].post.id, "deleted")])
    store.close()
    pseudonymiser = Pseudonymiser.from_settings(settings)

    deletions = noticed_deletions(settings)
    assert forget_deletions(deletions, sinks, audit_log, pseudonymiser) == 1
    assert forget_deletions(deletions, sinks, audit_log, pseudonymiser) == 0
    assert sql_rows(settings)[batch[2].post.id]["text"] is None
    (entry,) = audit_log.entries(FORGET)
    assert (entry.actor, entry.post_id) == (DELETION_ACTOR, batch[2].post.id)
    assert entry.detail["reason"] == "the platform reports it deleted"


def test_no_live_connector_means_no_deletions(settings: Settings) -> None:
    assert noticed_deletions(settings) == []


def test_the_command_forgets_and_says_what_changed(tmp_path: Path) -> None:
    env = {
        "OVERHEARD_SINKS": '["sql", "jsonl"]',
        "OVERHEARD_DATABASE__URL": f"sqlite:///{tmp_path}/overheard.db",
        "OVERHEARD_JSONL__DIRECTORY": str(tmp_path / "jsonl"),
        "OVERHEARD_PRIVACY__AUTHOR_KEY": AUTHOR_KEY,
    }
    settings = Settings(
        sinks=["sql", "jsonl"],
        database=DatabaseSettings(url=env["OVERHEARD_DATABASE__URL"]),
        jsonl=JsonlSettings(directory=tmp_path / "jsonl"),
        privacy=PrivacySettings(author_key=SecretStr(AUTHOR_KEY)),
    )
    made = [create_sink(name, settings) for name in settings.sinks]
    for sink in made:
        sink.open()
    write_all(made, issues())
    for sink in made:
        sink.close()
    runner = CliRunner()

    result = runner.invoke(app, ["forget", "reddit:t1_kit00001"], env=env)
    assert result.exit_code == 0, result.output
    assert "sql: 1 record(s) changed" in result.output
    assert "jsonl: 1 record(s) changed" in result.output
    result = runner.invoke(app, ["forget", "--author", "t2_resident0"], env=env)
    assert result.exit_code == 0, result.output
    assert "sql: 2 record(s) changed" in result.output
    assert AUTHOR_KEY not in result.output

    assert runner.invoke(app, ["forget"], env=env).exit_code == 2
    assert len(AuditLog.from_settings(settings).entries(FORGET)) == 2
