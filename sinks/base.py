"""The sink contract: one method that takes a batch of issues and says, per issue, what happened.

The runtime owns batching, retries, dead-lettering and offset commits; a sink
only writes and classifies each outcome as written, retry or rejected.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from overheard.model import Issue


@dataclass(frozen=True)
class Written:
    """Durably written (or already there: a redelivered issue is written, not an error)."""


@dataclass(frozen=True)
class Retry:
    """A transient failure: the runtime tries again after `delay` seconds (or its backoff)."""

    reason: str
    delay: float | None = None


@dataclass(frozen=True)
class Rejected:
    """Can never succeed: the runtime dead-letters the issue with this reason."""

    reason: str


Outcome = Written | Retry | Rejected

WRITTEN = Written()


@runtime_checkable
class Sink(Protocol):
    """What the runtime needs of a sink."""

    name: str

    def open(self) -> None:
        """Connect and prepare (create or migrate tables, discover services)."""

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        """Write a batch; return one outcome per issue, in the same order.

        Must be idempotent on `Issue.id`. May raise `TransientError` when the
        whole batch failed for a reason that may pass (the target is down).
        """
        ...

    def close(self) -> None:
        """Release connections."""


class BaseSink(ABC):
    """A convenience base: `open` and `close` do nothing unless overridden."""

    name: str

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    @abstractmethod
    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        """See `Sink.write`."""


# -- optional capabilities: a sink has one when it has the method (isinstance discovers it) --


@runtime_checkable
class Forgetting(Protocol):
    """A sink that keeps post text or authors, and can drop them (`overheard forget`)."""

    def forget(self, post_id: str | None = None, author_key: str | None = None) -> int:
        """Remove the text and author of the post `post_id`, or of every post whose
        author's pseudonym is `author_key`; keep the issue, its category and location.

        Returns how many records changed: 0 when there was nothing (left) to forget,
        so that forgetting twice is harmless.
        """
        ...


@runtime_checkable
class Retaining(Protocol):
    """A sink that can drop post text past its retention (`overheard retention apply`)."""

    def drop_text_before(self, cutoff: datetime) -> int:
        """Drop the text of posts made before `cutoff`; keep the issues. Returns how many
        records changed (0 on a repeat)."""
        ...


def without_text(issue: dict[str, Any]) -> dict[str, Any]:
    """An issue's JSON without what forget and retention drop: the post's text, the
    submission's title (Reddit) and the author (pseudonym included). Location, category,
    scores and the post's id and URL stay."""
    post = dict(issue.get("post") or {})
    post.pop("text", None)
    post["author"] = {}
    thread = dict(post.get("thread") or {})
    thread.pop("title", None)
    post["thread"] = thread
    return {**issue, "post": post}
