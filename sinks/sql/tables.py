"""The SQL sink's tables, as SQLAlchemy Core metadata.

This is the schema the code writes to; the migrations in `migrations/versions`
are what create it. The two must agree, which a test checks with Alembic's
`compare_metadata`.

The CHECK constraints hold what a city's database should never contain (a score
outside [0, 1], a latitude past a pole, a category name longer than the
profiles use), so a row the database refuses is rejected on its own while its
batch-mates are written. Text columns are unbounded and their limits are named
CHECKs rather than VARCHAR(n): PostgreSQL then names the constraint in its
refusal (VARCHAR only says "value too long"), and SQLite, which ignores VARCHAR
lengths, enforces them too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    PostgreSQL keeps the instant (timestamptz). SQLite has no time zones: values
    are stored as UTC wall-clock time and come back marked UTC rather than naive.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: JSONB on PostgreSQL (queryable with ->, @>), JSON text elsewhere.
Json = JSON().with_variant(JSONB(), "postgresql")


def _between(column: str, low: float, high: float) -> CheckConstraint:
    return CheckConstraint(f"{column} BETWEEN {low} AND {high}", name=f"{column}_range")


def _length(column: str, low: int, high: int) -> CheckConstraint:
    return CheckConstraint(f"length({column}) BETWEEN {low} AND {high}", name=f"{column}_length")


issues = Table(
    "issues",
    metadata,
    Column("id", Uuid, primary_key=True, comment="Issue.id: uuid5 of city and post id"),
    Column("city", String, nullable=False),
    Column("post_id", String, nullable=False, comment="<platform>:<native id>"),
    Column("platform", String, nullable=False),
    Column("post_url", Text),
    Column("post_created_at", UtcDateTime, nullable=False),
    Column(
        "author_key",
        String,
        comment="HMAC-SHA256 pseudonym of the author id (overheard.privacy); never the id",
    ),
    Column("author_key_id", String, comment="[privacy] key_id of the key that made author_key"),
    Column("text", Text, comment="the post's text; NULL once forgotten or past retention"),
    Column(
        "text_dropped_at",
        UtcDateTime,
        comment="when forget or retention dropped the text and author",
    ),
    Column("text_dropped_by", String, comment="forget | retention"),
    Column("category", String, nullable=False),
    Column("service_code", String, comment="the city's 311 service code"),
    Column("complaint_score", Float, nullable=False),
    Column("category_score", Float, nullable=False),
    Column("locality_score", Float, nullable=False),
    Column("civic_score", Float, comment="the civic model's probability, when models decided"),
    Column("lat", Float),
    Column("lon", Float),
    Column("location_precision", String),
    Column("location_source", String),
    Column("location_confidence", Float),
    Column("location_span_text", Text),
    Column("location_span_start", Integer),
    Column("location_span_end", Integer),
    Column("addresses_city", Boolean, nullable=False),
    Column("names_city", Boolean, nullable=False),
    Column("urgent", Boolean, nullable=False),
    Column(
        "to_311",
        Boolean,
        nullable=False,
        server_default=true(),
        comment="the profile routes it to 311 (urgent reports, by default, not)",
    ),
    Column("decided_by", String, nullable=False),
    Column("explanation", Json, nullable=False),
    Column("classifier_version", String, nullable=False),
    Column("profile_version", String, nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("issue", Json, nullable=False, comment="the whole Issue message, as JSON"),
    Column("written_at", UtcDateTime, nullable=False, comment="when the sink first wrote it"),
    Column(
        "cluster_id",
        Uuid,
        comment="the first issue of its cluster (its own id when alone); "
        "NULL: written before clusters",
    ),
    _length("city", 1, 64),
    _length("post_id", 3, 256),
    _length("category", 1, 64),
    _length("service_code", 1, 64),
    _between("complaint_score", 0, 1),
    _between("category_score", 0, 1),
    _between("locality_score", 0, 1),
    _between("civic_score", 0, 1),
    _between("lat", -90, 90),
    _between("lon", -180, 180),
    _between("location_confidence", 0, 1),
    CheckConstraint(
        "(lat IS NULL) = (lon IS NULL)"
        " AND (lat IS NULL) = (location_precision IS NULL)"
        " AND (lat IS NULL) = (location_source IS NULL)"
        " AND (lat IS NULL) = (location_confidence IS NULL)",
        name="location_whole",
    ),
    Index(None, "city", "category"),
    Index(None, "post_id"),
    Index(None, "author_key"),
    Index(None, "cluster_id"),
)
