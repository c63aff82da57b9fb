"""Forgetting a post or an author in every sink that keeps them, and recording that we did.

What each built-in sink does (`forget` in each): the SQL sink empties the row's text and
author and keeps the issue, its category and location; the jsonl sink rewrites its day files
without the post's lines; the open311 sink records the forget in its ledger and nothing
else (the city already received the request); the webhook sink keeps nothing to forget.
Every call is recorded in the audit log, whether or not anything was left to change, so a
repeat is harmless and visible.
Replies not yet posted to a forgotten post are withdrawn (`overheard.replies`).

An author is forgotten by pseudonym: the raw id given on the command line is turned into its
HMAC with the current key (`overheard.privacy`) and never stored or logged.

Deletions the live connectors noticed (`ingest.cursors.CursorStore.deletions`) are forgotten
by `forget_deletions`, which the daemon's housekeeping thread calls
(`overheard.retention.Housekeeping`); the audit log says which were done already.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from overheard import audit
from overheard.errors import ConfigError
from overheard.privacy import PrivateSink, Pseudonymiser
from overheard.replies import ReplyQueue
from overheard.sinks.base import Forgetting, Sink

if TYPE_CHECKING:
    from overheard.ingest.cursors import Deletion
    from overheard.settings import Settings

log = logging.getLogger(__name__)

#: The audit actor of forgets triggered by platform deletions.
DELETION_ACTOR = "daemon:platform-deletion"


def capable(sink: Sink) -> object:
    """The object behind `sink` whose optional capabilities count (the wrapped sink)."""
    return sink.inner if isinstance(sink, PrivateSink) else sink


def forget(
    sinks: Sequence[Sink],
    audit_log: audit.AuditLog,
    pseudonymiser: Pseudonymiser,
    *,
    actor: str,
    post_id: str | None = None,
    author_id: str | None = None,
    reason: str | None = None,
) -> dict[str, int]:
    """Forget the post `post_id` or the author `author_id` in every sink that can; returns
    the records changed per sink, and appends one audit row."""
    if (post_id is None) == (author_id is None):
        raise ValueError("forget one post or one author")
    author_key = None
    if author_id is not None:
        author_key = pseudonymiser.key_of(author_id)
        if author_key is None:
            raise ConfigError(
                "forget --author needs the author key (OVERHEARD_PRIVACY__AUTHOR_KEY) "
                "that pseudonymised the sinks' authors"
            )
    changed: dict[str, int] = {}
    for sink in sinks:
        target = capable(sink)
        if isinstance(target, Forgetting):
            changed[sink.name] = target.forget(post_id=post_id, author_key=author_key)
    # A reply must never answer a post its author took back.
    withdrawn = ReplyQueue(audit_log).withdraw(
        actor, datetime.now(UTC), post_id=post_id, author_key=author_key
    )
    audit_log.record(
        audit.FORGET,
        actor,
        post_id=post_id,
        author_key=author_key,
        detail={
            "changed": changed,
            "replies_withdrawn": withdrawn,
            "reason": reason,
            "key_id": pseudonymiser.key_id,
        },
    )
    log.info(
        "forgot %s in %s",
        "a post" if post_id else "an author",
        ", ".join(f"{name} ({n})" for name, n in changed.items()) or "no sink",
        extra={"post_id": post_id} if post_id else {},
    )
    return changed


def forget_deletions(
    deletions: Iterable[Deletion],
    sinks: Sequence[Sink],
    audit_log: audit.AuditLog,
    pseudonymiser: Pseudonymiser,
) -> int:
    """Forget every deleted post not forgotten yet; returns how many were."""
    done = audit_log.forgotten_posts()
    count = 0
    for deletion in deletions:
        if deletion.post_id in done:
            continue
        forget(
            sinks,
            audit_log,
            pseudonymiser,
            actor=DELETION_ACTOR,
            post_id=deletion.post_id,
            reason=f"the platform reports it {deletion.reason}",
        )
        done.add(deletion.post_id)
        count += 1
    return count


def noticed_deletions(settings: Settings) -> list[Deletion]:
    """The deletions the live connectors recorded, or none when no live connector ran."""
    from overheard.ingest.cursors import CursorStore

    path: Path = settings.ingest.checkpoint_dir / "live.sqlite"
    if not path.exists():
        return []
    store = CursorStore(path)
    try:
        return store.deletions()
    finally:
        store.close()
