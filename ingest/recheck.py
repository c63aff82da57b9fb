"""Asking a platform again about the posts already sent: deleted or removed since?

X's developer terms and Reddit's API terms want a copy of a post gone when the post is.
While reading, the connectors notice only what the answer shows (a `[deleted]` comment,
a referenced tweet not found); a post deleted after it was read would stay in the sinks.
So every `x.compliance_every_h` / `reddit.recheck_every_h` hours each live connector
asks its platform about every post it sent (`CursorStore.sent_ids`): X through batch
compliance (`x_compliance.py`), Reddit through `/api/info` (`reddit_recheck.py`).

The answer is a `Batch` of deletions on a stream of its own (`x:compliance`,
`reddit:recheck`) whose cursor is the time of the check, so `feed_live` commits it like
any batch: the deletions and the time of the next check in one transaction. A crash
before that commit checks again after the restart; a check that fails is tried again an
hour later, without holding up the poll. `overheard ingest compliance
x|reddit` runs the same check at once, then forgets what it found.

Posts created more than `keep_days` ago (the longest `[retention] text_days`, when every
configured sink has one) are no longer asked about: no sink keeps their text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from overheard.errors import TransientError
from overheard.settings import Settings

from .cursors import CursorStore, Deletion
from .live import Batch

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: After a check that failed, the next one waits this long (or `every_h`, if shorter).
RETRY_AFTER = timedelta(hours=1)


class Checker(Protocol):
    """Asks a platform which of the posts sent are gone."""

    #: The `Platform` value the post ids start with (`x`, `reddit`).
    platform: str
    #: The stream whose cursor holds the time of the last check.
    stream: str

    def check(self, post_ids: Sequence[str]) -> list[Deletion]: ...


def now_utc() -> datetime:
    return datetime.now(UTC)


def keep_days(settings: Settings) -> int | None:
    """How many days any configured sink keeps post text; None when one keeps it for good."""
    days = [settings.retention.text_days.get(name) for name in settings.sinks]
    if not days or any(d is None for d in days):
        return None
    return max(d for d in days if d is not None)


def due(cursors: CursorStore, stream: str, every_h: float, now: datetime) -> bool:
    """Whether the check of `stream` is due: never when `every_h` is 0; `RETRY_AFTER` after
    a check that failed."""
    if every_h <= 0:
        return False
    cursor = cursors.load(stream)
    interval = timedelta(hours=every_h)
    failed = cursor.get("failed_at")
    if failed is not None:
        return now - datetime.fromisoformat(failed) >= min(interval, RETRY_AFTER)
    last = cursor.get("checked_at")
    return last is None or now - datetime.fromisoformat(last) >= interval


def recheck(checker: Checker, cursors: CursorStore, keep: int | None, now: datetime) -> Batch:
    """Ask the platform about every post sent (and young enough to matter); the deletions
    found, in a batch to commit."""
    if keep is not None:
        pruned = cursors.prune_sent(now - timedelta(days=keep))
        if pruned:
            log.info(
                "%s: %d posts older than %d days no longer checked", checker.stream, pruned, keep
            )
    post_ids = cursors.sent_ids(checker.platform)
    deletions = checker.check(post_ids) if post_ids else []
    log.info(
        "%s: %d posts checked, %d deleted or removed since they were read",
        checker.stream,
        len(post_ids),
        len(deletions),
    )
    cursor = {"checked_at": now.isoformat(), "checked": len(post_ids), "gone": len(deletions)}
    return Batch(checker.stream, [], cursor, deletions)


def recheck_if_due(
    checker: Checker | None,
    cursors: CursorStore,
    every_h: float,
    keep: int | None,
    clock: Clock = now_utc,
) -> Iterator[Batch]:
    """The check's batch when one is due (what a connector's `poll` yields first).

    A check that fails for a reason that may pass (`TransientError`: the platform down, a
    compliance job that failed) is not retried with the poll, which would hold up reading
    new posts: the batch records when it failed, and the check is due again
    `RETRY_AFTER` later.
    """
    now = clock()
    if checker is None or not due(cursors, checker.stream, every_h, now):
        return
    try:
        batch = recheck(checker, cursors, keep, now)
    except TransientError as exc:
        log.warning(
            "%s: the deletion check failed (%s); trying again in %s, reading goes on",
            checker.stream,
            exc,
            min(timedelta(hours=every_h), RETRY_AFTER),
        )
        failed = {**cursors.load(checker.stream), "failed_at": now.isoformat()}
        batch = Batch(checker.stream, [], failed)
    yield batch
