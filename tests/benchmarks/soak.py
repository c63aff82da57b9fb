"""`make soak`: the memory of a long-running `overheard run` under a steady load.

`overheard run --stage all` (classify and the SQL sink, with the text models and the
gazetteer) is fed real posts through the broker at `SOAK_RATE` posts/s (default 75, the
load `broker_pipeline.py` argues for a large city) for `SOAK_MINUTES` (default 30). Its
VmRSS is read from /proc every `SOAK_SAMPLE_S` seconds (default 30); the first sample
is taken after a warm-up (models loaded, first batches through), and the slope is the
least-squares line through the samples. Printed, and written to var/bench/soak.json.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tests.benchmarks.broker_load import (
    ROOT,
    Feed,
    RunningDaemon,
    broker,
    daemon,
    group_committed,
    posts_topic,
    real_posts,
    wait_for_topic,
    wait_until,
)

OUTPUT = ROOT / "var" / "bench" / "soak.json"
WARM_UP_S = 60.0


def slope_per_hour(samples: list[tuple[float, int]]) -> float:
    """The least-squares slope of (seconds, KiB) samples, in MiB per hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return 0.0
    kib_per_s = sum((t - mean_t) * (r - mean_r) for t, r in samples) / spread
    return kib_per_s * 3600 / 1024


def soak(
    running: RunningDaemon, feed: Feed, minutes: float, rate: float, every_s: float
) -> list[tuple[float, int]]:
    """Feed at `rate` for `minutes` after the warm-up; (seconds since start, KiB) samples."""
    console = Console()
    feed.paced(rate, WARM_UP_S)
    started = time.monotonic()
    samples = [(0.0, running.rss_kib())]
    console.print(f"warm: RSS {samples[0][1] / 1024:.1f} MiB; soaking {minutes:g} min")
    while (elapsed := time.monotonic() - started) < minutes * 60:
        feed.paced(rate, min(every_s, minutes * 60 - elapsed))
        if not running.alive():
            raise RuntimeError(f"overheard run exited during the soak:\n{running.tail()}")
        samples.append((round(time.monotonic() - started, 1), running.rss_kib()))
        console.print(
            f"{samples[-1][0] / 60:5.1f} min  RSS {samples[-1][1] / 1024:7.1f} MiB  "
            f"sent {feed.count:,}  issues {running.issue_count():,}"
        )
    return samples


def main() -> None:
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    rate = float(os.environ.get("SOAK_RATE", "75"))
    every_s = float(os.environ.get("SOAK_SAMPLE_S", "30"))
    console = Console()
    posts = real_posts()
    prefix = f"soak{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="overheard-soak-") as workdir,
        broker() as kafka,
        daemon(kafka.bootstrap, Path(workdir), prefix) as running,
    ):
        wait_for_topic(kafka.bootstrap, posts_topic(prefix), running)
        feed = Feed(kafka.bootstrap, posts_topic(prefix), posts)
        try:
            samples = soak(running, feed, minutes, rate, every_s)
        finally:
            feed.close()
        group = f"{prefix}.baltimore.classify"
        wait_until(
            lambda: group_committed(kafka.bootstrap, group) >= feed.count,
            120,
            "the classify stage to catch up",
            running,
        )
        issues = running.issue_count()
    rss = [kib for _, kib in samples]
    figures: dict[str, Any] = {
        "minutes": minutes,
        "rate_posts_per_s": rate,
        "sample_every_s": every_s,
        "warm_up_s": WARM_UP_S,
        "posts_sent": feed.count,
        "issues_written": issues,
        "rss_start_mib": round(rss[0] / 1024, 1),
        "rss_end_mib": round(rss[-1] / 1024, 1),
        "rss_peak_mib": round(max(rss) / 1024, 1),
        "rss_slope_mib_per_hour": round(slope_per_hour(samples), 2),
        "samples": [{"s": t, "rss_kib": kib} for t, kib in samples],
        "broker": kafka.kind,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
    }
    table = Table(title=f"overheard run, {minutes:g} min at {rate:g} posts/s: RSS")
    for column in ("start", "end", "peak", "slope", "posts", "issues"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{figures['rss_start_mib']} MiB",
        f"{figures['rss_end_mib']} MiB",
        f"{figures['rss_peak_mib']} MiB",
        f"{figures['rss_slope_mib_per_hour']} MiB/h",
        f"{feed.count:,}",
        f"{issues:,}",
    )
    console.print(table)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"written to {OUTPUT}")


if __name__ == "__main__":
    main()
