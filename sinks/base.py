"""The sink contract: one method that takes a batch of issues and says, per issue, what happened.

The runtime owns batching, retries, dead-lettering and offset commits; a sink
only writes and classifies each outcome as written, retry or rejected.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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
