"""What a replay does with the posts' own time: a window to keep (`--since/--until`) and
a pace to keep (`--speed`).

Archives are not sorted by time, so the window filters every post rather than
stopping at the first one past `until`, and the pacer never sleeps backwards: a post
older than the newest one seen goes through at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

log = logging.getLogger(__name__)

#: The longest a replay sleeps between two posts, in wall seconds, whatever the speed.
MAX_GAP_S = 60.0


def parse_instant(text: str) -> datetime:
    """An ISO date (its midnight UTC) or datetime (UTC when it names no zone)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO date or datetime") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class TimeWindow:
    """Posts created at `since` or later and before `until` (either end open when None)."""

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since ({self.since}) must come before until ({self.until})")

    def __contains__(self, moment: datetime) -> bool:
        if self.since is not None and moment < self.since:
            return False
        return self.until is None or moment < self.until


class Pacer:
    """Waits so that posts go out `speed` times as fast as they were written.

    The first post sets the origin; each later one is due when the wall clock has moved
    (post time - origin) / speed. A post no newer than the newest seen is due at once.
    A gap longer than `max_gap_s` of wall time is cut to `max_gap_s` (and logged), and
    the origin moves to that post, so one quiet month does not stall a demo.
    `before_wait` runs before any wait, so what was sent so far is processed first.
    """

    def __init__(
        self,
        speed: float,
        *,
        max_gap_s: float = MAX_GAP_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        before_wait: Callable[[], None] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.speed = speed
        self.max_gap_s = max_gap_s
        self._clock = clock
        self._sleep = sleep
        self.before_wait = before_wait
        self._origin: tuple[datetime, float] | None = None
        self._newest: datetime | None = None

    def pace(self, created_at: datetime) -> None:
        """Return when the post created at `created_at` is due."""
        if self._origin is None or self._newest is None:
            self._origin = (created_at, self._clock())
            self._newest = created_at
            return
        if created_at <= self._newest:
            return
        gap = (created_at - self._newest).total_seconds() / self.speed
        self._newest = created_at
        if gap > self.max_gap_s:
            log.info(
                "%.0f s without posts at %gx: waiting %.0f s instead",
                gap,
                self.speed,
                self.max_gap_s,
            )
            self._wait_until(self._clock() + self.max_gap_s)
            self._origin = (created_at, self._clock())
            return
        origin_time, origin_wall = self._origin
        self._wait_until(origin_wall + (created_at - origin_time).total_seconds() / self.speed)

    def _wait_until(self, deadline: float) -> None:
        """Sleep until the clock reads `deadline`, after `before_wait` took its share."""
        if deadline <= self._clock():
            return
        if self.before_wait is not None:
            self.before_wait()
        remaining = deadline - self._clock()
        if remaining > 0:
            self._sleep(remaining)
