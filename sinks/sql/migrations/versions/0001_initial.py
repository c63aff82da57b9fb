"""The issues table.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _between(column: str, low: float, high: float) -> sa.CheckConstraint:
    return sa.CheckConstraint(
        f"{column} BETWEEN {low} AND {high}", name=op.f(f"ck_issues_{column}_range")
    )


def _length(column: str, low: int, high: int) -> sa.CheckConstraint:
    return sa.CheckConstraint(
        f"length({column}) BETWEEN {low} AND {high}", name=op.f(f"ck_issues_{column}_length")
    )


def upgrade() -> None:
    op.create_table(
        "issues",
        sa.Column("id", sa.Uuid(), nullable=False, comment="Issue.id: uuid5 of city and post id"),
        sa.Column("city", sa.String(), nullable=False),
        sa.Column("post_id", sa.String(), nullable=False, comment="<platform>:<native id>"),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("post_url", sa.Text(), nullable=True),
        sa.Column("post_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author_id", sa.String(), nullable=True),
        sa.Column("author_handle", sa.String(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column(
            "service_code", sa.String(), nullable=True, comment="the city's 311 service code"
        ),
        sa.Column("complaint_score", sa.Float(), nullable=False),
        sa.Column("category_score", sa.Float(), nullable=False),
        sa.Column("locality_score", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("location_precision", sa.String(), nullable=True),
        sa.Column("location_source", sa.String(), nullable=True),
        sa.Column("location_confidence", sa.Float(), nullable=True),
        sa.Column("location_span_text", sa.Text(), nullable=True),
        sa.Column("location_span_start", sa.Integer(), nullable=True),
        sa.Column("location_span_end", sa.Integer(), nullable=True),
        sa.Column("addresses_city", sa.Boolean(), nullable=False),
        sa.Column("names_city", sa.Boolean(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=False),
        sa.Column("explanation", _JSON, nullable=False),
        sa.Column("classifier_version", sa.String(), nullable=False),
        sa.Column("profile_version", sa.String(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("issue", _JSON, nullable=False, comment="the whole Issue message, as JSON"),
        sa.Column(
            "written_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="when the sink first wrote it",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issues")),
        _length("city", 1, 64),
        _length("post_id", 3, 256),
        _length("category", 1, 64),
        _length("service_code", 1, 64),
        _between("complaint_score", 0, 1),
        _between("category_score", 0, 1),
        _between("locality_score", 0, 1),
        _between("lat", -90, 90),
        _between("lon", -180, 180),
        _between("location_confidence", 0, 1),
        sa.CheckConstraint(
            "(lat IS NULL) = (lon IS NULL)"
            " AND (lat IS NULL) = (location_precision IS NULL)"
            " AND (lat IS NULL) = (location_source IS NULL)"
            " AND (lat IS NULL) = (location_confidence IS NULL)",
            name=op.f("ck_issues_location_whole"),
        ),
    )
    op.create_index(op.f("ix_issues_city_category"), "issues", ["city", "category"])
    op.create_index(op.f("ix_issues_post_id"), "issues", ["post_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_issues_post_id"), table_name="issues")
    op.drop_index(op.f("ix_issues_city_category"), table_name="issues")
    op.drop_table("issues")
