"""A real PostgreSQL database for the test session.

``OVERHEARD_TEST_DATABASE_URL`` set: a fresh database is created in that server for the
session and dropped at the end (or, without the right to create one, the URL is used as
given). Otherwise a throwaway cluster is made with the machine's PostgreSQL server binaries
(Debian's ``/usr/lib/postgresql/<version>/bin``) in a temporary directory, served on a free
loopback port, and deleted at the end.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from .processes import (
    ServiceUnavailable,
    free_ports,
    run_checked,
    running_as_root,
    spawn,
    stop_process,
    wait_until_ready,
)

DATABASE_URL_ENV = "OVERHEARD_TEST_DATABASE_URL"
NOT_INSTALLED = (
    "PostgreSQL server not installed: run `make services` or set OVERHEARD_TEST_DATABASE_URL"
)
SERVER_USER = "postgres"
STARTUP_TIMEOUT_S = 60.0
# A throwaway cluster: durability settings only slow the tests down.
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


@contextmanager
def session_database() -> Iterator[str]:
    """Yield the SQLAlchemy URL of a database for this session; clean up afterwards.

    Raises `ServiceUnavailable` when there is neither a given server nor one to start.
    """
    given = os.environ.get(DATABASE_URL_ENV)
    if given:
        with _fresh_database(_with_psycopg(make_url(given))) as url:
            yield url
        return
    with _local_server() as server, _fresh_database(server) as url:
        yield url


def find_server_bin_dir() -> Path | None:
    """The bin directory of the newest PostgreSQL server installed the Debian way."""
    candidates = [
        initdb.parent
        for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if initdb.parent.parent.name.isdigit()
    ]
    return max(candidates, key=lambda bin_dir: int(bin_dir.parent.name), default=None)


@contextmanager
def _local_server() -> Iterator[URL]:
    """Run a new cluster in a temporary directory; yield the URL of its `postgres` database.

    PostgreSQL refuses to run as root, so as root the cluster belongs to, and the server
    runs as, the ``postgres`` user.
    """
    bin_dir = find_server_bin_dir()
    if bin_dir is None:
        raise ServiceUnavailable(NOT_INSTALLED)
    run_as = _server_user()
    home = Path(tempfile.mkdtemp(prefix="overheard-postgres-"))
    try:
        if run_as is not None:
            shutil.chown(home, run_as, run_as)
        data = home / "data"
        _initdb(bin_dir, data, run_as)
        port = free_ports(1)[0]
        settings = [f"--{key}={value}" for key, value in _SERVER_SETTINGS.items()]
        log_path = home / "postgres.log"
        server = spawn(
            [
                str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(home),
                *settings,
            ],
            log_path,
            run_as=run_as,
        )  # fmt: skip
        try:
            wait_until_ready(
                f"PostgreSQL ({bin_dir})",
                lambda: _accepts_connections(port),
                [server],
                [log_path],
                STARTUP_TIMEOUT_S,
            )
            yield URL.create(
                "postgresql+psycopg", username="postgres", host="127.0.0.1", port=port,
                database="postgres",
            )  # fmt: skip
        finally:
            stop_process(server, signal.SIGINT)  # SIGINT is PostgreSQL's "fast" shutdown
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _initdb(bin_dir: Path, data: Path, run_as: str | None) -> None:
    """Create a cluster whose superuser ``postgres`` logs in without a password."""
    run_checked(
        [
            str(bin_dir / "initdb"), "--pgdata", str(data), "--username", "postgres",
            "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync",
        ],
        what="initdb",
        run_as=run_as,
    )  # fmt: skip


def _server_user() -> str | None:
    """The user to run the server as: None (this user) unless we are root."""
    if not running_as_root():
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ServiceUnavailable(
            f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as"
        ) from None
    return SERVER_USER


def _accepts_connections(port: int) -> bool:
    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=2
        ):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def _fresh_database(server: URL) -> Iterator[str]:
    """Create a uniquely named database on `server` and yield its URL; drop it afterwards.

    Without the right to create databases, `server` itself is yielded and left alone.
    """
    name = f"overheard_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except SQLAlchemyError as error:
            warnings.warn(
                f"could not create a database for the session ({error}); using {server!r}",
                stacklevel=2,
            )
            yield server.render_as_string(hide_password=False)
            return
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            _drop_database(admin, name)
    finally:
        admin.dispose()


def _drop_database(admin: Engine, name: str) -> None:
    """Drop the session's database, cutting off connections the tests left open."""
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except SQLAlchemyError as error:
        warnings.warn(f"could not drop the test database {name!r}: {error}", stacklevel=2)


def _with_psycopg(url: URL) -> URL:
    """Use the psycopg (3) driver for a plain ``postgresql://`` URL (psycopg2 isn't installed)."""
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


@contextmanager
def fresh_schema(server_url: str) -> Iterator[str]:
    """A URL whose search_path is a new, empty schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
