"""The built-in sinks through the conformance kit that integrators use for theirs."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import make_url, select, text

from overheard.model import Issue
from overheard.sinks.base import Sink
from overheard.sinks.jsonl import JsonlSink, file_name
from overheard.sinks.open311 import Open311Sink
from overheard.sinks.sql import SqlSink
from overheard.sinks.sql.tables import issues as issues_table
from overheard.sinks.webhook import WebhookSink
from overheard.testing.open311_process import Open311Server
from overheard.testing.sink_kit import (
    POSTED_ON,
    IssueMaker,
    SinkConformance,
    make_issue,
)
from tests.sinks.webhook_receiver import Answer, Receiver, running_receiver

# -- sql ---------------------------------------------------------------------------------------


def sql_ids(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return [str(i) for i in connection.execute(select(issues_table.c.id)).scalars()]
    finally:
        engine.dispose()


def sql_everything(url: str) -> str:
    """Every column of every row, as text: what the privacy checks search."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return "\n".join(
                repr(dict(row)) for row in connection.execute(select(issues_table)).mappings()
            )
    finally:
        engine.dispose()


class TestSqlOnSqliteConformance(SinkConformance):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        # A writer gives up after 200 ms waiting for the lock, so a locked file fails fast.
        return f"sqlite:///{tmp_path}/var/overheard.db?timeout=0.2"

    @pytest.fixture
    def sink(self, url: str) -> Callable[[], Sink]:
        return lambda: SqlSink(url)

    @pytest.fixture
    def read_back(self, url: str) -> Callable[[], list[str]]:
        return lambda: sql_ids(url)

    @pytest.fixture
    def stored_text(self, url: str) -> Callable[[], str]:
        return lambda: sql_everything(url)

    @pytest.fixture
    def make_unavailable(self, url: str) -> Callable[[Sink], Any]:
        @contextmanager
        def locked(_sink: Sink) -> Iterator[None]:
            """Another process holds the database's write lock."""
            holder = sqlite3.connect(str(make_url(url).database), isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                holder.execute("ROLLBACK")
                holder.close()

        return locked


@pytest.mark.postgres
class TestSqlOnPostgresConformance(SinkConformance):
    @pytest.fixture
    def url(self, postgres_schema_url: str) -> str:
        parsed = make_url(postgres_schema_url)
        if parsed.password is None:
            # The test server trusts local logins, so a password only shows whether it leaks.
            parsed = parsed.set(password="kit-s3cret-pw-4711")
        # A writer gives up after 200 ms waiting for a lock.
        options = f"{parsed.query['options']} -clock_timeout=200"
        return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)

    @pytest.fixture
    def sink(self, url: str) -> Callable[[], Sink]:
        return lambda: SqlSink(url)

    @pytest.fixture
    def read_back(self, url: str) -> Callable[[], list[str]]:
        return lambda: sql_ids(url)

    @pytest.fixture
    def stored_text(self, url: str) -> Callable[[], str]:
        return lambda: sql_everything(url)

    @pytest.fixture
    def secrets(self, url: str) -> list[str]:
        password = make_url(url).password
        return [str(password)] if password else []

    @pytest.fixture
    def make_unavailable(self, url: str) -> Callable[[Sink], Any]:
        @contextmanager
        def locked(_sink: Sink) -> Iterator[None]:
            """Another session holds an exclusive lock on the issues table."""
            engine = sqlalchemy.create_engine(url)
            try:
                with engine.connect() as connection, connection.begin():
                    connection.execute(text("LOCK TABLE issues IN ACCESS EXCLUSIVE MODE"))
                    yield
            finally:
                engine.dispose()

        return locked


# -- jsonl -------------------------------------------------------------------------------------


class TestJsonlConformance(SinkConformance):
    @pytest.fixture
    def directory(self, tmp_path: Path) -> Path:
        return tmp_path / "jsonl"

    @pytest.fixture
    def sink(self, directory: Path) -> Callable[[], Sink]:
        return lambda: JsonlSink(directory)

    @pytest.fixture
    def read_back(self, directory: Path) -> Callable[[], list[str]]:
        def ids() -> list[str]:
            return [
                json.loads(line)["id"]
                for path in sorted(directory.glob("*.jsonl"))
                for line in path.read_bytes().splitlines()
            ]

        return ids

    @pytest.fixture
    def stored_text(self, directory: Path) -> Callable[[], str]:
        # Every file, .forgotten included; JSON's \u escapes undone so texts compare.
        return lambda: (
            "\n".join(
                json.dumps(json.loads(line), ensure_ascii=False)
                for path in sorted(directory.glob("*.jsonl"))
                for line in path.read_bytes().splitlines()
            )
            + "".join(p.read_text() for p in directory.glob(".forgotten"))
        )

    @pytest.fixture
    def make_unavailable(self, directory: Path) -> Callable[[Sink], Any]:
        @contextmanager
        def full(_sink: Sink) -> Iterator[None]:
            """The disk is full: the day file of the kit's issues writes to /dev/full."""
            day = directory / file_name(POSTED_ON)
            aside = day.with_name(day.name + ".aside")
            os.replace(day, aside)
            day.symlink_to("/dev/full")
            try:
                yield
            finally:
                day.unlink()
                os.replace(aside, day)

        return full


# -- webhook -----------------------------------------------------------------------------------

WEBHOOK_SECRET = "whsec-kit-5e1d0c9a"


class TestWebhookConformance(SinkConformance):
    @pytest.fixture
    def receiver(self) -> Iterator[Receiver]:
        with running_receiver(WEBHOOK_SECRET) as running:
            yield running

    @pytest.fixture
    def url(self, receiver: Receiver) -> str:
        return receiver.url.replace("http://", "http://hook:p4ss-kit-77@") + "?token=tok-kit-88"

    @pytest.fixture
    def sink(self, url: str) -> Callable[[], Sink]:
        return lambda: WebhookSink(url, WEBHOOK_SECRET, timeout_s=2)

    @pytest.fixture
    def read_back(self, receiver: Receiver) -> Callable[[], list[str]]:
        return lambda: list(receiver.stored)

    @pytest.fixture
    def stored_text(self, receiver: Receiver) -> Callable[[], str]:
        return lambda: "\n".join(repr(value) for value in receiver.stored.values())

    @pytest.fixture
    def secrets(self) -> list[str]:
        return [WEBHOOK_SECRET, "p4ss-kit-77", "tok-kit-88"]

    @pytest.fixture
    def make_unavailable(self, receiver: Receiver) -> Callable[[Sink], Any]:
        def unavailable(_sink: Sink) -> Any:
            """The receiver answers 503 Service Unavailable to everything."""
            return receiver.answering(lambda request: Answer(503, headers={"Retry-After": "1"}))

        return unavailable


# -- open311 ----------------------------------------------------------------------------------

OPEN311_KEY = "kit-open311-key-5f1d"
#: Services of the test server's Baltimore list that need no attribute overheard cannot fill.
OPEN311_CODES = ("BGE-StLight(s) Out", "SW-Dirty Alley", "SW-Graffiti Removal")
ISSUE_LINE = re.compile(r"overheard issue ([0-9a-f-]{36})")


def sqlite_dump(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        return list(connection.iterdump())


def open311_issues(count: int, *, start: int = 0, city: str = "baltimore") -> list[Issue]:
    """The kit's issues, each located and filed under a service the server offers."""
    made = []
    for n in range(start, start + count):
        issue = make_issue(n, city=city, located=True)
        category = issue.category.model_copy(
            update={"service_code": OPEN311_CODES[n % len(OPEN311_CODES)]}
        )
        made.append(issue.model_copy(update={"category": category}))
    return made


@pytest.fixture(scope="module")
def open311_server() -> Iterator[Open311Server]:
    with Open311Server.start(services="baltimore", api_key=OPEN311_KEY) as running:
        yield running


class TestOpen311Conformance(SinkConformance):
    @pytest.fixture
    def sink(self, open311_server: Open311Server, tmp_path: Path) -> Callable[[], Sink]:
        open311_server.reset()
        open311_server.clear()
        ledger = f"sqlite:///{tmp_path}/ledger.db"
        return lambda: Open311Sink(open311_server.url, OPEN311_KEY, None, ledger, 5)

    @pytest.fixture
    def read_back(self, open311_server: Open311Server) -> Callable[[], list[str]]:
        def filed() -> list[str]:
            return [
                match.group(1)
                for request in open311_server.requests()
                if (match := ISSUE_LINE.search(request["form"].get("description", "")))
            ]

        return filed

    @pytest.fixture
    def issue_maker(self) -> IssueMaker:
        return open311_issues

    @pytest.fixture
    def stored_text(self, open311_server: Open311Server, tmp_path: Path) -> Callable[[], str]:
        # What the city received, and the ledger (forget only records there).
        return lambda: "\n".join(
            [repr(request["form"]) for request in open311_server.requests()]
            + sqlite_dump(tmp_path / "ledger.db")
        )

    @pytest.fixture
    def forget_removes_text(self) -> bool:
        return False  # the city already has the text; the ledger records the forget

    @pytest.fixture
    def make_unavailable(self, open311_server: Open311Server) -> Callable[[Sink], Any]:
        @contextmanager
        def answering_503(_: Sink) -> Iterator[None]:
            open311_server.control(fail_next=[503] * 50)
            try:
                yield
            finally:
                open311_server.reset()

        return answering_503

    @pytest.fixture
    def secrets(self) -> list[str]:
        return [OPEN311_KEY]
