"""Retention: each sink keeps a post's text for `[retention] text_days.<sink>` days, then
drops it (and the author's pseudonym) and keeps the issue and its location.

The age is the post's (`Post.created_at`), not the time the sink wrote it: a replayed
archive of old posts keeps no text longer than live posts would have. `overheard retention
apply` runs it once; the daemon's `Housekeeping` thread runs it every `[retention] every_h`
hours (24 by default), together with forgetting the posts the platforms deleted. Every run
is recorded in the audit log, per sink, with the cutoff and how many records changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from overheard import audit
from overheard.forget import capable, forget_deletions, noticed_deletions
from overheard.privacy import Pseudonymiser
from overheard.settings import RetentionSettings, Settings
from overheard.sinks.base import Retaining, Sink

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: The audit actor of the daemon's runs.
DAEMON_ACTOR = "daemon:housekeeping"


def _now() -> datetime:
    return datetime.now(UTC)


def apply_retention(
    sinks: Sequence[Sink],
    retention: RetentionSettings,
    audit_log: audit.AuditLog,
    *,
    actor: str,
    now: datetime,
) -> dict[str, int]:
    """Drop the text older than each sink's retention; returns the records changed per sink
    (sinks without a retention, or unable to drop text, are left out)."""
    changed: dict[str, int] = {}
    for sink in sinks:
        days = retention.text_days.get(sink.name)
        if days is None:
            continue
        target = capable(sink)
        if not isinstance(target, Retaining):
            log.warning("[retention] names sink %s, which keeps no text to drop", sink.name)
            continue
        cutoff = now - timedelta(days=days)
        changed[sink.name] = target.drop_text_before(cutoff)
        audit_log.record(
            audit.RETENTION,
            actor,
            sink=sink.name,
            detail={"text_days": days, "cutoff": cutoff.isoformat(), "changed": changed[sink.name]},
            at=now,
        )
        log.info("retention: %s dropped the text of %d records", sink.name, changed[sink.name])
    return changed


class Housekeeping(threading.Thread):
    """The daemon's daily chores on its open sinks: retention, then platform deletions.

    Runs once at start, then every `[retention] every_h` hours, until `stop` is set (it
    waits on the event, so a stop ends the wait at once). A failure is logged and tried
    again at the next round: it must never stop the stages.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        settings: Settings,
        stop: threading.Event,
        *,
        clock: Clock = _now,
    ) -> None:
        super().__init__(name="housekeeping", daemon=True)
        self._sinks = list(sinks)
        self._settings = settings
        self._stop_event = stop
        self._clock = clock
        self.rounds = 0

    def run(self) -> None:
        interval = self._settings.retention.every_h * 3600
        while not self._stop_event.is_set():
            self.round()
            self._stop_event.wait(interval)

    def round(self) -> None:
        """One round of chores (also what a test calls, with its clock)."""
        audit_log = audit.AuditLog.from_settings(self._settings)
        try:
            apply_retention(
                self._sinks,
                self._settings.retention,
                audit_log,
                actor=DAEMON_ACTOR,
                now=self._clock(),
            )
            forget_deletions(
                noticed_deletions(self._settings),
                self._sinks,
                audit_log,
                Pseudonymiser.from_settings(self._settings),
            )
        except Exception:  # noqa: BLE001 - logged; the next round tries again
            log.exception("housekeeping failed; trying again next round")
        finally:
            audit_log.close()
            self.rounds += 1
