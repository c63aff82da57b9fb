"""Pseudonymised authors: what the sinks the runtime makes receive and store."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import pytest
from pydantic import SecretStr

from overheard.audit import WRITTEN, AuditLog
from overheard.model import Author, Issue
from overheard.paths import CONFIG_DIR
from overheard.privacy import PrivateSink, Pseudonymiser, guard
from overheard.settings import (
    AuditSettings,
    DatabaseSettings,
    JsonlSettings,
    PrivacySettings,
    Settings,
)
from overheard.sinks.base import WRITTEN as WRITTEN_OUTCOME
from overheard.sinks.base import BaseSink, Outcome
from overheard.sinks.registry import create_sink
from overheard.testing.sink_kit import make_issues

KEY = "test-author-key-9c1f"


def with_profile_location(issue: Issue) -> Issue:
    author = issue.post.author.model_copy(update={"profile_location": "Hampden, Baltimore"})
    return issue.model_copy(update={"post": issue.post.model_copy(update={"author": author})})


def sqlite_dump(path: Path) -> str:
    with closing(sqlite3.connect(path)) as connection:
        return "\n".join(connection.iterdump())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        sinks=["sql", "jsonl"],
        database=DatabaseSettings(url=f"sqlite:///{tmp_path}/overheard.db"),
        jsonl=JsonlSettings(directory=tmp_path / "jsonl"),
        privacy=PrivacySettings(author_key=SecretStr(KEY), key_id="2026a"),
    )


def test_the_pseudonym_is_the_hmac_of_the_author_id_under_the_key() -> None:
    keyed = Pseudonymiser(SecretStr(KEY), "2026a")
    expected = hmac.new(KEY.encode(), b"t2_resident3", hashlib.sha256).hexdigest()
    assert keyed.key_of("t2_resident3") == expected
    assert Pseudonymiser(SecretStr("another key"), "2027a").key_of("t2_resident3") != expected
    assert keyed.key_of(None) is None
    assert Pseudonymiser(None, "2026a").key_of("t2_resident3") is None
    assert KEY not in repr(keyed)


def test_protect_keeps_only_the_pseudonym_and_the_post_url() -> None:
    issue = with_profile_location(make_issues(1)[0])
    keyed = Pseudonymiser(SecretStr(KEY), "2026a")
    protected = keyed.protect(issue)
    assert protected.post.author == Author(key=keyed.key_of("t2_resident0"), key_id="2026a")
    assert protected.post.url == issue.post.url and protected.post.text == issue.post.text
    assert protected.id == issue.id and protected.location == issue.location
    assert keyed.protect(issue, keep_handle=True).post.author.handle == "resident_0"
    assert Pseudonymiser(None, "2026a").protect(issue).post.author == Author()


def test_no_row_or_line_holds_a_raw_author_by_default(settings: Settings, tmp_path: Path) -> None:
    issues = [with_profile_location(issue) for issue in make_issues(14)]
    for name in settings.sinks:
        sink = create_sink(name, settings)
        sink.open()
        assert sink.write(issues) == [WRITTEN_OUTCOME] * len(issues)
        sink.close()
    stored = sqlite_dump(tmp_path / "overheard.db") + "".join(
        path.read_text() for path in (tmp_path / "jsonl").glob("*.jsonl")
    )
    raw = {v for i in issues for v in (i.post.author.id, i.post.author.handle) if v}
    assert len(raw) == 14
    assert [value for value in raw if value in stored] == []
    assert "Hampden" not in stored
    assert all(issue.post.url and issue.post.url in stored for issue in issues)
    pseudonym = Pseudonymiser(SecretStr(KEY), "2026a").key_of("t2_resident0")
    with closing(sqlite3.connect(tmp_path / "overheard.db")) as connection:
        rows = connection.execute(
            "SELECT author_key, author_key_id, issue FROM issues WHERE post_id = ?",
            (issues[0].post.id,),
        ).fetchall()
    assert [(key, key_id) for key, key_id, _ in rows] == [(pseudonym, "2026a")]
    assert json.loads(rows[0][2])["post"]["author"] == {
        "id": None,
        "handle": None,
        "profile_location": None,
        "key": pseudonym,
        "key_id": "2026a",
    }


def test_every_written_issue_is_audited_with_its_classifier_version(settings: Settings) -> None:
    issues = make_issues(3)
    sink = create_sink("sql", settings)
    sink.open()
    sink.write(issues)
    sink.write(issues[:1])  # a redelivery is a write too, and is recorded as one
    sink.close()
    entries = AuditLog.from_settings(settings).entries(WRITTEN)
    assert [(e.issue_id, e.sink, e.actor) for e in entries] == [
        *[(i.id, "sql", "sink-stage") for i in issues],
        (issues[0].id, "sql", "sink-stage"),
    ]
    assert entries[0].detail["classifier_version"] == "0.1.0"
    assert entries[0].author_key == Pseudonymiser(SecretStr(KEY), "k").key_of("t2_resident0")


def test_the_audit_defaults_to_the_sql_database_else_var(settings: Settings) -> None:
    from overheard.audit import audit_url

    assert audit_url(settings) == settings.database.effective_url()
    assert audit_url(settings.model_copy(update={"sinks": ["jsonl"]})) == "sqlite:///var/audit.db"
    chosen = settings.model_copy(update={"audit": AuditSettings(url="sqlite:////tmp/a.db")})
    assert audit_url(chosen) == "sqlite:////tmp/a.db"


class Recording(BaseSink):
    def __init__(self, name: str) -> None:
        self.name = name
        self.received: list[Issue] = []

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        self.received.extend(issues)
        return [WRITTEN_OUTCOME] * len(issues)

    def ledger_entry(self, issue_id: object) -> None:
        return None  # as an open311 sink whose city gave no request id yet


@pytest.mark.parametrize(
    ("allowed", "sink_name", "handle"),
    [
        (False, "open311", None),
        (True, "open311", "resident_0"),
        (True, "sql", None),
    ],
)
def test_the_handle_reaches_only_the_311_sink_and_only_when_the_profile_allows(
    tmp_path: Path, settings: Settings, allowed: bool, sink_name: str, handle: str | None
) -> None:
    profile = (CONFIG_DIR / "cities" / "baltimore.toml").read_text()
    profile = profile.replace("handle_to_311 = false", f"handle_to_311 = {str(allowed).lower()}")
    path = tmp_path / "city.toml"
    path.write_text(profile)
    recording = Recording(sink_name)
    made = guard(recording, settings.model_copy(update={"city": str(path)}))
    assert isinstance(made, PrivateSink)
    made.write(make_issues(1))
    (received,) = recording.received
    assert received.post.author.handle == handle
    assert received.post.author.id is None
