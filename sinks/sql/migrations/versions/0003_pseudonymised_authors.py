"""Pseudonymised authors, and post text that forget or retention can drop.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

What it does to rows already there: their raw author (``author_id``, ``author_handle``, and
the author inside the ``issue`` JSON, profile location included) is deleted, and their
``author_key`` stays NULL. The migration cannot pseudonymise them instead: the key lives in
the daemon's environment, not in the database, and a migration must not depend on a secret.
Those issues keep their post id and URL, so ``overheard forget POST_ID`` still finds them;
``overheard forget --author`` does not (they no longer name anyone).

Downgrading brings the columns back empty (the ids are gone for good) and puts an empty
text where forget or retention had dropped it, since 0002 requires one.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TEXT_COMMENT = "the post's text; NULL once forgotten or past retention"
#: Rows rewritten per UPDATE round.
_CHUNK = 1000


def upgrade() -> None:
    _strip_authors_from_issue_json()
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("author_id")
        batch.drop_column("author_handle")
        batch.add_column(
            sa.Column(
                "author_key",
                sa.String(),
                nullable=True,
                comment="HMAC-SHA256 pseudonym of the author id (overheard.privacy); never the id",
            )
        )
        batch.add_column(
            sa.Column(
                "author_key_id",
                sa.String(),
                nullable=True,
                comment="[privacy] key_id of the key that made author_key",
            )
        )
        batch.alter_column(
            "text",
            existing_type=sa.Text(),
            nullable=True,
            comment=_TEXT_COMMENT,
            existing_comment=None,
        )
        batch.add_column(
            sa.Column(
                "text_dropped_at",
                sa.DateTime(timezone=True),
                nullable=True,
                comment="when forget or retention dropped the text and author",
            )
        )
        batch.add_column(
            sa.Column("text_dropped_by", sa.String(), nullable=True, comment="forget | retention")
        )
        batch.create_index(op.f("ix_issues_author_key"), ["author_key"])


def downgrade() -> None:
    issues = sa.table("issues", sa.column("text", sa.Text()))
    op.execute(issues.update().where(issues.c.text.is_(None)).values(text=""))
    with op.batch_alter_table("issues") as batch:
        batch.drop_index(op.f("ix_issues_author_key"))
        batch.drop_column("text_dropped_by")
        batch.drop_column("text_dropped_at")
        batch.alter_column(
            "text",
            existing_type=sa.Text(),
            nullable=False,
            comment=None,
            existing_comment=_TEXT_COMMENT,
        )
        batch.drop_column("author_key_id")
        batch.drop_column("author_key")
        batch.add_column(sa.Column("author_handle", sa.String(), nullable=True))
        batch.add_column(sa.Column("author_id", sa.String(), nullable=True))


def _strip_authors_from_issue_json() -> None:
    """Replace the author inside every stored issue's JSON by an empty one."""
    issues = sa.table("issues", sa.column("id", sa.Uuid()), sa.column("issue", _JSON))
    connection = op.get_bind()
    last: Any = None
    while True:
        query = sa.select(issues.c.id, issues.c.issue).order_by(issues.c.id).limit(_CHUNK)
        if last is not None:
            query = query.where(issues.c.id > last)
        rows = connection.execute(query).all()
        if not rows:
            return
        for row_id, issue in rows:
            post = issue.get("post") if isinstance(issue, dict) else None
            if isinstance(post, dict) and post.get("author"):
                stripped = {**issue, "post": {**post, "author": {}}}
                connection.execute(
                    issues.update().where(issues.c.id == row_id).values(issue=stripped)
                )
        last = rows[-1][0]
