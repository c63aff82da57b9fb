"""Schema migrations for the SQL sink, run through Alembic from code.

Alembic is configured here rather than from an alembic.ini: the script location
is a package resource, so it works wherever overheard is installed, and nothing
reads a file or reconfigures the application's logging (an ini's `fileConfig`
would). The version table is `overheard_alembic_version`, so the sink can share
a database with a city's own Alembic-managed tables.

To add a migration, write `migrations/versions/000N_what.py` by hand or let
Alembic draft it against a database at the current head::

    engine = create_engine("sqlite:///var/dev.db")
    upgrade(engine)
    with engine.begin() as connection:
        command.revision(alembic_config(connection), "what", autogenerate=True, rev_id="000N")
"""

from __future__ import annotations

import hashlib

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, func, select

VERSION_TABLE = "overheard_alembic_version"

#: The pg_advisory_xact_lock key that serialises concurrent upgrades of one database.
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"overheard.sinks.sql").digest()[:8], "big", signed=True)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the sink's migrations, bound to `connection` if given."""
    config = Config()
    config.set_main_option("script_location", "overheard.sinks.sql:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema; a no-op when it is already there.

    Everything runs in one transaction, so a failed upgrade leaves the database
    as it was. Processes that start together wait for one another: PostgreSQL
    through an advisory lock, SQLite through the write lock its `BEGIN IMMEDIATE`
    takes (see `sink.create_engine`). The loser then finds the schema at head.
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
        command.upgrade(alembic_config(connection), "head")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first upgrade."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the SQL sink's migrations have no head revision")
    return head
