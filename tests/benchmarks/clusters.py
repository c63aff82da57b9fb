"""The clusterer over a long stream: reports/s, and whether its memory stays flat.

A million reports over three years (one every ~95 s), in four categories, at 2,000
spots of the city with some scatter around each: the shape of a 1,000,000-post replay
in which every post were an issue, which no real feed comes near. The reports are made
as they are consumed, so the process's peak RSS after each tenth of the stream is the
clusterer's (and the interpreter's): with eviction, the live clusters, the reports they
track and the RSS stop growing once the first window (168 h) has passed.
"""

from __future__ import annotations

import random
import resource
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from overheard.clusters import Clusterer, Report
from overheard.profile import ClustersProfile

REPORTS = 1_000_000
SPOTS = 2_000
CATEGORIES = ("pothole", "streetlight", "trash_dumping", "graffiti")
START = datetime(2013, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)


def stream(count: int, seed: int = 11) -> Iterator[Report]:
    rng = random.Random(seed)
    spots = [(39.20 + rng.random() * 0.17, -76.71 + rng.random() * 0.18) for _ in range(SPOTS)]
    step = SPAN / count
    for n in range(count):
        lat, lon = spots[rng.randrange(SPOTS)]
        yield Report(
            uuid.UUID(int=n),
            f"baltimore:{CATEGORIES[n % len(CATEGORIES)]}",
            lat + rng.gauss(0, 0.0003),
            lon + rng.gauss(0, 0.0003),
            START + step * n,
        )


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(console: Console) -> dict[str, Any]:
    clusterer = Clusterer(ClustersProfile())
    checkpoints = []
    tenth = REPORTS // 10
    started = time.perf_counter()
    for n, report in enumerate(stream(REPORTS), 1):
        clusterer.add(report)
        if n % tenth == 0:
            checkpoints.append(
                (n, clusterer.live_clusters, clusterer.tracked_reports, _peak_rss_mib())
            )
    elapsed = time.perf_counter() - started
    table = Table(title=f"clusterer: {REPORTS:,} reports over {SPAN.days} days")
    for column in ("reports", "live clusters", "reports tracked", "peak RSS MiB"):
        table.add_column(column, justify="right")
    for n, live, tracked, rss in checkpoints:
        table.add_row(f"{n:,}", f"{live:,}", f"{tracked:,}", f"{rss:.0f}")
    console.print(table)
    rate = REPORTS / elapsed
    console.print(f"{rate:,.0f} reports/s (making the reports included)")
    return {
        "reports": REPORTS,
        "reports_per_s": round(rate),
        "live_clusters": [live for _, live, _, _ in checkpoints],
        "reports_tracked": [tracked for _, _, tracked, _ in checkpoints],
        "peak_rss_mib": [round(rss) for _, _, _, rss in checkpoints],
    }
