"""The civic model's score and the 311 routing of each issue.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode rebuilds the table on SQLite, which cannot add a CHECK constraint in place.
    with op.batch_alter_table("issues") as batch:
        batch.add_column(
            sa.Column(
                "civic_score",
                sa.Float(),
                nullable=True,
                comment="the civic model's probability, when models decided",
            )
        )
        batch.add_column(
            sa.Column(
                "to_311",
                sa.Boolean(),
                server_default=sa.true(),
                nullable=False,
                comment="the profile routes it to 311 (urgent reports, by default, not)",
            )
        )
        batch.create_check_constraint(
            op.f("ck_issues_civic_score_range"), "civic_score BETWEEN 0 AND 1"
        )


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_constraint(op.f("ck_issues_civic_score_range"), type_="check")
        batch.drop_column("to_311")
        batch.drop_column("civic_score")
