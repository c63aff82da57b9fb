"""Alembic environment: runs the migrations on the connection `migrate` hands over.

Online only, and only through `overheard.sinks.sql.migrate`, which opens the
transaction (and takes the upgrade lock) before Alembic starts; Alembic sees the
transaction already begun and leaves the commit to it.
"""

from alembic import context

from overheard.sinks.sql.migrate import VERSION_TABLE
from overheard.sinks.sql.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run the SQL sink's migrations through overheard.sinks.sql.migrate, "
        "which passes Alembic a connection"
    )


def _ours(name: str | None, type_: str, _parents: object) -> bool:
    """Autogenerate compares the sink's own tables only: the database may hold others
    (the audit log, a city's own tables), which a migration must never drop."""
    return type_ != "table" or name in metadata.tables


context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    include_name=_ours,
)
with context.begin_transaction():
    context.run_migrations()
