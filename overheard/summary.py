"""What a run did, counted as it happens: posts read, what the cascade decided, dead letters."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from overheard.classify.decide import Decision, Outcome
from overheard.clusters import Clusterer, ClusterStats
from overheard.deadletter import DeadLetter
from overheard.model import Issue
from overheard.whereabouts import Whereabouts

#: How many of the streets and neighbourhoods with the most issues `as_dict` lists.
TOP = 10


@dataclass
class Summary:
    posts_read: int = 0
    #: Posts a replay skipped because they were created outside its --since/--until.
    outside_time_range: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    issues_by_category: Counter[str] = field(default_factory=Counter)
    issues_by_precision: Counter[str] = field(default_factory=Counter)
    urgent: int = 0
    issues_written: Counter[str] = field(default_factory=Counter)
    deadletters: Counter[tuple[str, str]] = field(default_factory=Counter)
    streets: Counter[str] = field(default_factory=Counter)
    neighbourhoods: Counter[str] = field(default_factory=Counter)
    #: Names the streets and neighbourhood of located issues; None counts neither.
    whereabouts: Whereabouts | None = None
    #: Groups the issues into problems (`overheard.clusters`); None counts no clusters.
    clusterer: Clusterer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def read(self, count: int = 1) -> None:
        with self._lock:
            self.posts_read += count

    def decided(self, decisions: list[Decision]) -> None:
        issues = [decision.issue for decision in decisions if decision.issue is not None]
        self.tally(Counter(decision.outcome for decision in decisions), issues)

    def tally(self, outcomes: Mapping[str, int], issues: Sequence[Issue]) -> None:
        """Count decisions by their outcomes and the issues among them, in order (a
        parallel replay's workers send these rather than the decisions)."""
        streets: list[str] = []
        hoods: list[str] = []
        if self.whereabouts is not None:
            for issue in issues:
                if issue.location is not None:
                    streets += self.whereabouts.streets(issue.location)
                    hood = self.whereabouts.neighbourhood(issue.location)
                    hoods += [hood] if hood else []
        with self._lock:
            self.streets.update(streets)
            self.neighbourhoods.update(hoods)
            self.outcomes.update(outcomes)
            for issue in issues:
                self.issues_by_category[issue.category.name] += 1
                location = issue.location
                self.issues_by_precision[location.precision.value if location else "unlocated"] += 1
                self.urgent += issue.urgent
                if self.clusterer is not None:
                    self.clusterer.assign(issue)

    def outside_window(self, count: int = 1) -> None:
        with self._lock:
            self.outside_time_range += count

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
            "outside_time_range": self.outside_time_range,
            "posts_classified": classified,
            "stopped_by_prefilter": self.stopped_by_prefilter,
            "stopped_by_prefilter_share": (
                round(self.stopped_by_prefilter / classified, 4) if classified else 0.0
            ),
            "outcomes": dict(sorted(self.outcomes.items())),
            "issues": sum(self.issues_by_category.values()),
            "issues_by_category": dict(sorted(self.issues_by_category.items())),
            "issues_by_precision": dict(sorted(self.issues_by_precision.items())),
            "not_judged": self.outcomes[Outcome.NOT_JUDGED],
            "not_civic": self.outcomes[Outcome.NOT_CIVIC],
            "addressed_city_excluded": self.outcomes[Outcome.ADDRESSED_CITY],
            "outside_city_excluded": self.outcomes[Outcome.OUTSIDE_CITY],
            "urgent": self.urgent,
            "issues_written": dict(sorted(self.issues_written.items())),
            "deadletters": {
                f"{stage}:{error}": count
                for (stage, error), count in sorted(self.deadletters.items())
            },
            "top_streets": _top(self.streets),
            "top_neighbourhoods": _top(self.neighbourhoods),
            "clusters": (self.clusterer.stats if self.clusterer else ClusterStats()).as_dict(),
        }


def _top(counts: Counter[str]) -> list[dict[str, Any]]:
    """The `TOP` names with the most issues, most first, ties by name: a list, since JSON
    objects keep no order."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return [{"name": name, "issues": count} for name, count in ranked]
