"""Clusters: several reports of one problem (one pothole, N residents) grouped as one.

An issue is *eligible* when its location's precision is one of the profile's
`[clusters] precisions`: a street, neighbourhood or city centroid is shared by unrelated
problems, so issues located that coarsely are never grouped. An eligible issue joins the
cluster of its city and category whose anchor (the first report's point) is nearest and
within `distance_m`, provided the cluster's reports span posts within `window_hours` of
this post; otherwise it anchors a new cluster. A cluster's id is its anchor issue's id,
so the same issues in the same order always give the same clusters.

The work per issue is bounded: anchors sit in a grid of cells `distance_m` high, and only
the cells around the point are searched. Memory stays flat on long replays: a cluster
whose last report is older than the window, relative to the newest post of its city and
category, can take no more reports and is forgotten. Eviction is per city and category,
so the clusters of one category depend only on the order of that category's issues (the
order the issues topic keeps, keyed by city and category).
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from overheard.model import Issue
from overheard.profile import ClustersProfile

#: Metres in one degree of latitude (and of longitude at the equator).
METRES_PER_DEGREE = 111_320.0
EARTH_RADIUS_M = 6_371_008.8
#: Past this latitude the longitude search is capped (no city lives there).
_MIN_COS = 0.05

Cell = tuple[int, int]


@dataclass(frozen=True)
class Assignment:
    """Where an issue belongs: its cluster (the anchor's issue id) and that cluster's size."""

    cluster: uuid.UUID
    #: Reports in the cluster once this one joined (1 for an anchor or an ineligible issue).
    size: int

    def is_anchor_of(self, issue_id: uuid.UUID) -> bool:
        return self.cluster == issue_id


@dataclass(frozen=True)
class Report:
    """What clustering needs of an issue, also rebuilt from a sink's records."""

    issue_id: uuid.UUID
    #: `city:category`: only reports with the same key are grouped.
    key: str
    lat: float
    lon: float
    posted_at: datetime

    @classmethod
    def of(cls, issue: Issue) -> Report:
        assert issue.location is not None
        return cls(
            issue.id,
            cluster_key(issue),
            issue.location.lat,
            issue.location.lon,
            issue.post.created_at,
        )


@dataclass
class _Cluster:
    anchor: Report
    cell: Cell
    first: datetime
    last: datetime
    members: list[uuid.UUID] = field(default_factory=list)


@dataclass
class _Group:
    """The live clusters of one city and category."""

    cells: dict[Cell, list[_Cluster]] = field(default_factory=lambda: defaultdict(list))
    newest: datetime | None = None
    #: (last report time, anchor id) per cluster; stale entries are skipped on eviction.
    expiry: list[tuple[datetime, uuid.UUID]] = field(default_factory=list)
    by_anchor: dict[uuid.UUID, _Cluster] = field(default_factory=dict)


@dataclass
class ClusterStats:
    """Counts for the replay summary."""

    #: Problems: clusters of any size, ineligible issues counting one each.
    problems: int = 0
    #: Clusters that reached two reports or more.
    multi_report: int = 0
    largest: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "problems": self.problems,
            "multi_report": self.multi_report,
            "largest": self.largest,
        }


def cluster_key(issue: Issue) -> str:
    """The issues topic's key too: one partition holds a category's issues in order."""
    return f"{issue.city}:{issue.category.name}"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


class Clusterer:
    """Assigns issues, in arrival order, to clusters (see the module's docstring)."""

    def __init__(self, config: ClustersProfile) -> None:
        self.distance_m = config.distance_m
        self.window = timedelta(hours=config.window_hours)
        self.precisions = frozenset(config.precisions)
        #: Cell height and width in degrees (square in degrees; the search widens in
        #: longitude by latitude).
        self._cell_deg = config.distance_m / METRES_PER_DEGREE
        self._groups: dict[str, _Group] = defaultdict(_Group)
        self._member_of: dict[uuid.UUID, _Cluster] = {}
        self.stats = ClusterStats()

    def eligible(self, issue: Issue) -> bool:
        location = issue.location
        return location is not None and location.precision in self.precisions

    def assign(self, issue: Issue) -> Assignment:
        """The issue's cluster. The same issue again (a redelivery) gets the same answer
        while its cluster is live, and is counted once."""
        known = self._member_of.get(issue.id)
        if known is not None:
            return Assignment(known.anchor.issue_id, len(known.members))
        if not self.eligible(issue):
            self._count(1)
            return Assignment(issue.id, 1)
        return self.add(Report.of(issue))

    def add(self, report: Report, cluster: uuid.UUID | None = None) -> Assignment:
        """Place a report: in `cluster` when given (rebuilding state a sink recorded), else
        in the nearest live cluster that takes it, else as the anchor of a new one."""
        known = self._member_of.get(report.issue_id)
        if known is not None:
            return Assignment(known.anchor.issue_id, len(known.members))
        group = self._groups[report.key]
        self._advance(group, report.posted_at)
        if cluster is not None and cluster != report.issue_id:
            target = group.by_anchor.get(cluster)
        else:
            target = None if cluster is not None else self._nearest(group, report)
        if target is None:
            target = self._anchor(group, report)
        else:
            self._join(group, target, report)
        return Assignment(target.anchor.issue_id, len(target.members))

    def withdraw(self, issue_id: uuid.UUID) -> list[uuid.UUID]:
        """Forget an issue (its sink refused it for good). An anchor takes its cluster with
        it; returns the other members, which the caller assigns again."""
        cluster = self._member_of.pop(issue_id, None)
        if cluster is None:
            return []
        if cluster.anchor.issue_id != issue_id:
            cluster.members.remove(issue_id)
            return []
        group = self._groups[cluster.anchor.key]
        group.by_anchor.pop(issue_id, None)
        group.cells[cluster.cell].remove(cluster)
        if not group.cells[cluster.cell]:
            del group.cells[cluster.cell]
        others = [member for member in cluster.members if member != issue_id]
        for member in others:
            self._member_of.pop(member, None)
        return others

    @property
    def live_clusters(self) -> int:
        """Clusters still able to take reports (what eviction keeps bounded)."""
        return sum(len(group.by_anchor) for group in self._groups.values())

    @property
    def tracked_reports(self) -> int:
        """Reports of the live clusters, remembered so that a redelivery is recognised."""
        return len(self._member_of)

    # -- internals

    def _cell(self, lat: float, lon: float) -> Cell:
        return (math.floor(lat / self._cell_deg), math.floor(lon / self._cell_deg))

    def _nearest(self, group: _Group, report: Report) -> _Cluster | None:
        row, column = self._cell(report.lat, report.lon)
        # A cell is distance_m high; in longitude, distance_m spans 1/cos(lat) cells.
        cos = max(_MIN_COS, math.cos(math.radians(abs(report.lat) + self._cell_deg)))
        reach = math.ceil(1 / cos)
        best: tuple[float, str, _Cluster] | None = None
        for dy in (-1, 0, 1):
            for dx in range(-reach, reach + 1):
                for candidate in group.cells.get((row + dy, column + dx), ()):
                    if not (
                        candidate.first - self.window
                        <= report.posted_at
                        <= candidate.last + self.window
                    ):
                        continue
                    anchor = candidate.anchor
                    metres = distance_m(report.lat, report.lon, anchor.lat, anchor.lon)
                    if metres > self.distance_m:
                        continue
                    # Ties go to the smaller anchor id, so the answer never depends on
                    # the order of a cell's list.
                    ranked = (metres, str(anchor.issue_id), candidate)
                    if best is None or ranked[:2] < best[:2]:
                        best = ranked
        return None if best is None else best[2]

    def _anchor(self, group: _Group, report: Report) -> _Cluster:
        cell = self._cell(report.lat, report.lon)
        cluster = _Cluster(report, cell, report.posted_at, report.posted_at, [report.issue_id])
        group.cells[cell].append(cluster)
        group.by_anchor[report.issue_id] = cluster
        self._member_of[report.issue_id] = cluster
        heapq.heappush(group.expiry, (cluster.last, report.issue_id))
        self._count(1)
        return cluster

    def _join(self, group: _Group, cluster: _Cluster, report: Report) -> None:
        cluster.members.append(report.issue_id)
        self._member_of[report.issue_id] = cluster
        cluster.first = min(cluster.first, report.posted_at)
        if report.posted_at > cluster.last:
            cluster.last = report.posted_at
            heapq.heappush(group.expiry, (cluster.last, cluster.anchor.issue_id))
        size = len(cluster.members)
        self.stats.multi_report += size == 2
        self.stats.largest = max(self.stats.largest, size)

    def _count(self, size: int) -> None:
        self.stats.problems += 1
        self.stats.largest = max(self.stats.largest, size)

    def _advance(self, group: _Group, posted_at: datetime) -> None:
        """Move the group's clock to `posted_at` if newer and evict what it leaves behind."""
        if group.newest is not None and posted_at <= group.newest:
            return
        group.newest = posted_at
        cutoff = posted_at - self.window
        while group.expiry and group.expiry[0][0] < cutoff:
            last, anchor_id = heapq.heappop(group.expiry)
            cluster = group.by_anchor.get(anchor_id)
            if cluster is None or cluster.last != last:
                continue  # withdrawn, or it took a later report (a newer entry exists)
            del group.by_anchor[anchor_id]
            cell = group.cells[cluster.cell]
            cell.remove(cluster)
            if not cell:
                del group.cells[cluster.cell]
            for member in cluster.members:
                self._member_of.pop(member, None)
