"""What a run did, counted as it happens: posts read, what the cascade decided, dead letters."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from overheard.classify.decide import Decision, Outcome
from overheard.deadletter import DeadLetter


@dataclass
class Summary:
    posts_read: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    issues_by_category: Counter[str] = field(default_factory=Counter)
    issues_by_precision: Counter[str] = field(default_factory=Counter)
    urgent: int = 0
    issues_written: Counter[str] = field(default_factory=Counter)
    deadletters: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def read(self, count: int = 1) -> None:
        with self._lock:
            self.posts_read += count

    def decided(self, decisions: list[Decision]) -> None:
        with self._lock:
            for decision in decisions:
                self.outcomes[decision.outcome] += 1
                if decision.issue is not None:
                    self.issues_by_category[decision.issue.category.name] += 1
                    location = decision.issue.location
                    precision = location.precision.value if location else "unlocated"
                    self.issues_by_precision[precision] += 1
                    self.urgent += decision.issue.urgent

    def written(self, sink: str, count: int) -> None:
        with self._lock:
            self.issues_written[sink] += count

    def dead_lettered(self, letter: DeadLetter) -> None:
        with self._lock:
            self.deadletters[(letter.stage, letter.error)] += 1

    @property
    def stopped_by_prefilter(self) -> int:
        return self.outcomes[Outcome.STOPPED_BY_SCAN]

    def as_dict(self) -> dict[str, Any]:
        classified = sum(self.outcomes.values())
        return {
            "posts_read": self.posts_read,
            "posts_classified": classified,
            "stopped_by_prefilter": self.stopped_by_prefilter,
            "stopped_by_prefilter_share": (
                round(self.stopped_by_prefilter / classified, 4) if classified else 0.0
            ),
            "outcomes": dict(sorted(self.outcomes.items())),
            "issues": sum(self.issues_by_category.values()),
            "issues_by_category": dict(sorted(self.issues_by_category.items())),
            "issues_by_precision": dict(sorted(self.issues_by_precision.items())),
            "addressed_city_excluded": self.outcomes[Outcome.ADDRESSED_CITY],
            "outside_city_excluded": self.outcomes[Outcome.OUTSIDE_CITY],
            "urgent": self.urgent,
            "issues_written": dict(sorted(self.issues_written.items())),
            "deadletters": {
                f"{stage}:{error}": count
                for (stage, error), count in sorted(self.deadletters.items())
            },
        }
