"""The cluster of each issue: reports of one problem grouped (`overheard.clusters`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Rows already there keep ``cluster_id`` NULL: they were written before clusters, and
grouping them now would need them in the order they arrived, which the table does not keep.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.add_column(
            sa.Column(
                "cluster_id",
                sa.Uuid(),
                nullable=True,
                comment="the first issue of its cluster (its own id when alone); "
                "NULL: written before clusters",
            )
        )
        batch.create_index(op.f("ix_issues_cluster_id"), ["cluster_id"])


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_index(op.f("ix_issues_cluster_id"))
        batch.drop_column("cluster_id")
