"""Acknowledgement replies: a draft for the resident when their report became a 311 request,
a review queue, and posting each approved reply exactly once.

Drafts. When the open311 sink has filed an issue and the city answered a
``service_request_id``, `ReplyDrafter` (called by `overheard.privacy.PrivateSink` after the
open311 sink's write) queues a draft in the profile's words (``[replies] template``, with
``{request_id}`` and ``{url}``). A request filed as a batch token waits in state
``awaiting_id``; a later write, after the sink resolved the token, turns it into the draft.
The draft names the post it answers and its author's pseudonym (so that forgetting an
author withdraws it), never the author.

Review. Every draft waits in state ``draft`` until ``overheard replies approve ISSUE_ID`` or
``reject``; only a category the profile lists in ``[replies] auto_reply`` is approved on
creation (reviewer ``profile:auto_reply``).

Posting, the open311 sink's ledger discipline. `post_approved` takes each ``approved`` reply,
records the intent (state ``posting``) *before* calling the platform, then ``posted`` with
the platform's id of the reply. A reply found in ``posting`` (the process stopped between
the two, or the answer was lost) is looked up on the platform first (`Replier.find`): found,
it is recorded as posted; not found, it is posted. So a restart mid-post posts it once.

The platforms' side is `overheard.reply_platforms` (tweepy, praw); ``overheard replies
post`` runs `post_approved` with them. The daemon never posts by itself.

The table ``replies`` lives beside the audit log (`overheard.audit.audit_url`), created when
missing. Every review and every post is audited (action ``reply``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Column, MetaData, String, Table, Text, Uuid, select, update
from sqlalchemy.dialects import postgresql, sqlite

from overheard import audit
from overheard.model import Issue
from overheard.profile import RepliesProfile
from overheard.sinks.base import Outcome, Written
from overheard.sinks.sql.tables import UtcDateTime

log = logging.getLogger(__name__)

AWAITING_ID = "awaiting_id"
DRAFT = "draft"
APPROVED = "approved"
REJECTED = "rejected"
POSTING = "posting"
POSTED = "posted"
AUTO_REVIEWER = "profile:auto_reply"
#: Who posts: the audit actor of posting.
POSTER_ACTOR = "replies"

metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s"})

replies_table = Table(
    "replies",
    metadata,
    Column("issue_id", Uuid, primary_key=True, comment="Issue.id: one reply per issue"),
    Column("post_id", String, nullable=False, comment="the resident's post it answers"),
    Column("author_key", String, comment="the pseudonym of the post's author"),
    Column("category", String, nullable=False),
    Column("service_request_id", String, comment="none while the request is a batch token"),
    Column("text", Text, nullable=False, comment="the reply, in the profile's words"),
    Column(
        "state",
        String,
        nullable=False,
        comment="awaiting_id|draft|approved|rejected|posting|posted",
    ),
    Column("reviewed_by", String),
    Column("reply_id", String, comment="the platform's id of the posted reply"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True)
class Reply:
    issue_id: uuid.UUID
    post_id: str
    author_key: str | None
    category: str
    service_request_id: str | None
    text: str
    state: str
    reviewed_by: str | None
    reply_id: str | None
    created_at: datetime
    updated_at: datetime


def reply_text(replies: RepliesProfile, request_id: str) -> str:
    url = replies.url.format(request_id=request_id) if replies.url else ""
    return replies.template.format(request_id=request_id, url=url).strip()


class ReplyQueue:
    """The review queue, in the audit log's database."""

    def __init__(self, audit_log: audit.AuditLog) -> None:
        self.audit = audit_log
        self._engine = audit_log.engine
        self._ready = False
        self._insert = (
            postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        )

    def create(self) -> None:
        """Create the table when missing (every method does it on first use)."""
        if self._ready:
            return
        self.audit.create()
        with self.audit.guard("create the replies table"), self._engine.begin() as connection:
            metadata.create_all(connection, checkfirst=True)
        self._ready = True

    def draft(
        self, issue: Issue, request_id: str | None, replies: RepliesProfile, now: datetime
    ) -> bool:
        """Queue the reply to `issue`'s post, or note it awaits the request's id (None);
        False when it is queued already."""
        self.create()
        auto = issue.category.name in replies.auto_reply
        values = {
            "issue_id": issue.id,
            "post_id": issue.post.id,
            "author_key": issue.post.author.key,
            "category": issue.category.name,
            "created_at": now,
            "updated_at": now,
        }
        statement = (
            self._insert(replies_table)
            .values(**values, **self._drafted(request_id, issue.category.name, replies))
            .on_conflict_do_nothing(index_elements=[replies_table.c.issue_id])
        )
        with self.audit.guard("write"), self._engine.begin() as connection:
            created = bool(connection.execute(statement).rowcount)
        if created and auto and request_id is not None:
            self._audit_auto(issue.id, issue.post.id, now)
        return created

    def complete(
        self, issue_id: uuid.UUID, request_id: str, replies: RepliesProfile, now: datetime
    ) -> bool:
        """Turn a reply awaiting its request's id into the draft; False when none awaits."""
        reply = self.get(issue_id)
        if reply is None or reply.state != AWAITING_ID:
            return False
        drafted = self._drafted(request_id, reply.category, replies)
        if not self.move(issue_id, (AWAITING_ID,), drafted.pop("state") or DRAFT, now, **drafted):
            return False
        if drafted["reviewed_by"] == AUTO_REVIEWER:
            self._audit_auto(issue_id, reply.post_id, now)
        return True

    def awaiting(self) -> list[Reply]:
        return self.list(AWAITING_ID)

    @staticmethod
    def _drafted(
        request_id: str | None, category: str, replies: RepliesProfile
    ) -> dict[str, str | None]:
        if request_id is None:
            return {"state": AWAITING_ID, "text": "", "reviewed_by": None}
        auto = category in replies.auto_reply
        return {
            "state": APPROVED if auto else DRAFT,
            "service_request_id": request_id,
            "text": reply_text(replies, request_id),
            "reviewed_by": AUTO_REVIEWER if auto else None,
        }

    def _audit_auto(self, issue_id: uuid.UUID, post_id: str, now: datetime) -> None:
        self.audit.record(
            audit.REPLY,
            AUTO_REVIEWER,
            issue_id=issue_id,
            post_id=post_id,
            detail={"state": APPROVED},
            at=now,
        )

    def list(self, state: str | None = None) -> list[Reply]:
        self.create()
        query = select(replies_table).order_by(replies_table.c.created_at)
        if state is not None:
            query = query.where(replies_table.c.state == state)
        with self.audit.guard("read"), self._engine.connect() as connection:
            return [Reply(**row) for row in connection.execute(query).mappings()]

    def get(self, issue_id: uuid.UUID) -> Reply | None:
        self.create()
        query = select(replies_table).where(replies_table.c.issue_id == issue_id)
        with self.audit.guard("read"), self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else Reply(**row)

    def review(self, issue_id: uuid.UUID, approve: bool, reviewer: str, now: datetime) -> bool:
        """Approve or reject a draft; False when there is no draft of that issue."""
        state = APPROVED if approve else REJECTED
        changed = self.move(issue_id, (DRAFT,), state, now, reviewed_by=reviewer)
        if changed:
            reply = self.get(issue_id)
            self.audit.record(
                audit.REPLY,
                reviewer,
                issue_id=issue_id,
                post_id=reply.post_id if reply else None,
                detail={"state": state},
                at=now,
            )
        return changed

    def withdraw(
        self,
        reviewer: str,
        now: datetime,
        *,
        post_id: str | None = None,
        author_key: str | None = None,
    ) -> int:
        """Reject the replies not yet posted to a post, or to an author, that was forgotten
        or deleted."""
        self.create()
        whose = (
            replies_table.c.post_id == post_id
            if post_id is not None
            else replies_table.c.author_key == author_key
        )
        statement = (
            update(replies_table)
            .where(whose, replies_table.c.state.in_((AWAITING_ID, DRAFT, APPROVED)))
            .values(state=REJECTED, reviewed_by=reviewer, updated_at=now)
        )
        with self.audit.guard("write"), self._engine.begin() as connection:
            return int(connection.execute(statement).rowcount)

    def move(
        self,
        issue_id: uuid.UUID,
        from_states: Sequence[str],
        to_state: str,
        now: datetime,
        **values: str | None,
    ) -> bool:
        """Move a reply from one of `from_states` to `to_state` (with `values`); False when
        it was in none of them, so that two processes never both take it."""
        self.create()
        statement = (
            update(replies_table)
            .where(replies_table.c.issue_id == issue_id, replies_table.c.state.in_(from_states))
            .values(state=to_state, updated_at=now, **values)
        )
        with self.audit.guard("write"), self._engine.begin() as connection:
            return bool(connection.execute(statement).rowcount)


class ReplyDrafter:
    """After the open311 sink's write: a draft for each issue the city gave an id."""

    def __init__(self, queue: ReplyQueue, replies: RepliesProfile) -> None:
        self._queue = queue
        self._replies = replies

    def __call__(
        self, ledger: _Ledger, issues: Sequence[Issue], outcomes: Sequence[Outcome]
    ) -> None:
        now = datetime.now(UTC)
        for issue, outcome in zip(issues, outcomes, strict=True):
            if not isinstance(outcome, Written):
                continue
            entry = ledger.ledger_entry(issue.id)
            if entry is not None:  # no entry: not filed (routed elsewhere, or forgotten)
                self._queue.draft(issue, entry.service_request_id or None, self._replies, now)
        # Batch tokens the sink resolved since: their requests now have ids.
        for reply in self._queue.awaiting():
            entry = ledger.ledger_entry(reply.issue_id)
            if entry is not None and entry.service_request_id:
                self._queue.complete(reply.issue_id, entry.service_request_id, self._replies, now)


class _Entry(Protocol):
    service_request_id: str | None


class _Ledger(Protocol):
    def ledger_entry(self, issue_id: uuid.UUID) -> _Entry | None: ...


class Replier(Protocol):
    """Posts replies on one platform (X through tweepy, Reddit through praw)."""

    def post(self, post_id: str, text: str) -> str:
        """Reply to the post; return the platform's id of the reply."""
        ...

    def find(self, post_id: str, text: str) -> str | None:
        """The id of our reply to the post with this text, when it is there."""
        ...


def post_approved(
    queue: ReplyQueue, replier: Replier, now: datetime, *, platform: str | None = None
) -> int:
    """Post every approved reply (and finish every interrupted one), once, or only those to
    posts of `platform` ("x", "reddit"); returns how many were posted or found posted."""
    done = 0
    for reply in queue.list(POSTING) + queue.list(APPROVED):
        if platform is not None and not reply.post_id.startswith(f"{platform}:"):
            continue
        if reply.state == POSTING:
            found = replier.find(reply.post_id, reply.text)
            if found is not None:
                _posted(queue, reply, found, now)
                done += 1
                continue
        elif not queue.move(reply.issue_id, (APPROVED,), POSTING, now):
            continue  # another poster took it
        reply_id = replier.post(reply.post_id, reply.text)
        _posted(queue, reply, reply_id, now)
        done += 1
    return done


def _posted(queue: ReplyQueue, reply: Reply, reply_id: str, now: datetime) -> None:
    queue.move(reply.issue_id, (POSTING,), POSTED, now, reply_id=reply_id)
    queue.audit.record(
        audit.REPLY,
        POSTER_ACTOR,
        issue_id=reply.issue_id,
        post_id=reply.post_id,
        detail={"state": POSTED, "reply_id": reply_id},
        at=now,
    )
