"""The daemon through a real Kafka broker: throughput, and latency at a large city's load.

`overheard run --stage all` (classify with the text models and the gazetteer, then the
SQL sink on SQLite) in its own process, fed real posts (`broker_load.real_posts`: the
r/baltimore sample and the shared labelled sets, about a quarter of which become
issues, five times the share of the r/baltimore sample, so the mix is heavier
than a city's feed).

(a) Throughput: a backlog of `BACKLOG` posts is sent as fast as the producer goes; posts/s
in is the classify group's committed offsets between 10% and 90% of the backlog,
issues/s out the sink's `written_at` between its 10th and 90th percentile rows.

(b) Latency at the stated load, from the post sent (its send time, the moment its Kafka
record timestamp is taken) to its issue's `written_at` in the sink's database (stamped
just before the insert commits). The load: X carries about 500 M posts a day (~5,800/s);
US accounts write perhaps a fifth of them (~1,200/s). A city of 2.7 M (Chicago, the
third largest) is 0.8% of the US population, so ~10 posts/s from its residents; a
keyword filter on the city's names and neighbourhoods also takes in everyone else who
mentions it (news, sports), say ×3 to ×5, and Reddit's city subreddits add well under
1/s. That is 30–50 posts/s; the bench runs 75 posts/s sustained (1.5–2.5× that),
with a burst of ×10 (750 posts/s for 10 s: a storm, a game night) in the middle.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tests.benchmarks.broker_load import (
    CITY,
    Feed,
    RunningDaemon,
    broker,
    daemon,
    group_committed,
    percentile,
    posts_topic,
    real_posts,
    wait_for_topic,
    wait_until,
)

BACKLOG = 20_000
STEADY_RATE = 75.0
BURST_RATE = 750.0
STEADY_S = 60.0
BURST_S = 10.0
WARM_UP_S = 15.0


def throughput(bootstrap: str, prefix: str, running: RunningDaemon, feed: Feed) -> dict[str, Any]:
    """Posts/s in and issues/s out over the middle 80% of a backlog."""
    group = f"{prefix}.{CITY}.classify"
    first = group_committed(bootstrap, group)
    feed.send(BACKLOG)
    feed.close()
    marks: dict[float, float] = {}
    deadline = time.monotonic() + 900
    while len(marks) < 2 and time.monotonic() < deadline:
        done = (group_committed(bootstrap, group) - first) / BACKLOG
        for share in (0.1, 0.9):
            if done >= share and share not in marks:
                marks[share] = time.monotonic()
        if not running.alive():
            raise RuntimeError(f"overheard run exited:\n{running.tail()}")
        time.sleep(0.2)
    if len(marks) < 2:
        raise RuntimeError(f"the classify stage did not get through the backlog:\n{running.tail()}")
    posts_per_s = 0.8 * BACKLOG / (marks[0.9] - marks[0.1])
    wait_until(lambda: _settled(running), 300, "the sink to write every issue", running)
    written = sorted(at for _, at in running.written())
    low, high = percentile_time(written, 0.1), percentile_time(written, 0.9)
    issues_per_s = 0.8 * len(written) / max((high - low).total_seconds(), 1e-3)
    return {
        "backlog_posts": BACKLOG,
        "issues": len(written),
        "issue_share": round(len(written) / BACKLOG, 3),
        "posts_per_s_in": round(posts_per_s),
        "issues_per_s_out": round(issues_per_s),
    }


def _settled(running: RunningDaemon) -> bool:
    """No new issue for two seconds."""
    count = running.issue_count()
    time.sleep(2)
    return running.issue_count() == count


def percentile_time(times: list[datetime], share: float) -> datetime:
    return times[max(0, min(len(times) - 1, round(share * len(times))))]


def latency(running: RunningDaemon, feed: Feed) -> dict[str, Any]:
    """Latencies (ms) of the posts sent in each phase: steady, burst, steady again.

    A warm-up at the steady rate comes first, until issues are written: the stages'
    consumers join their groups then, which is start-up, not latency.
    """
    warm_up_from = running.issue_count()
    feed.paced(STEADY_RATE, WARM_UP_S)
    wait_until(lambda: running.issue_count() > warm_up_from, 120, "a first issue", running)
    phases = [("steady", STEADY_RATE, STEADY_S), ("burst", BURST_RATE, BURST_S)]
    phases.append(("after the burst", STEADY_RATE, STEADY_S))
    windows = []
    for name, rate, seconds in phases:
        started = time.time()
        feed.paced(rate, seconds)
        windows.append((name, rate, started, time.time()))
    feed.close()
    wait_until(lambda: _settled(running), 300, "the sink to write every issue", running)
    written = dict(running.written())
    results = []
    for name, rate, started, ended in windows:
        delays = [
            (written[post_id].timestamp() - sent) * 1000
            for post_id, sent in feed.sent_at.items()
            if started <= sent < ended and post_id in written
        ]
        results.append(
            {
                "phase": name,
                "rate_posts_per_s": rate,
                "seconds": round(ended - started, 1),
                "issues": len(delays),
                "p50_ms": round(percentile(delays, 0.5)),
                "p99_ms": round(percentile(delays, 0.99)),
                "max_ms": round(max(delays)),
            }
        )
    return {"phases": results}


def run(console: Console) -> dict[str, Any]:
    posts = real_posts()
    figures: dict[str, Any] = {"sink": "sql (SQLite)", "stages": "overheard run --stage all"}
    with broker() as kafka:
        for part in ("throughput", "latency"):
            prefix = f"bench{uuid.uuid4().hex[:8]}"
            with (
                tempfile.TemporaryDirectory(prefix="overheard-bench-") as workdir,
                daemon(kafka.bootstrap, Path(workdir), prefix) as running,
            ):
                wait_for_topic(kafka.bootstrap, posts_topic(prefix), running)
                feed = Feed(kafka.bootstrap, posts_topic(prefix), posts)
                if part == "throughput":
                    figures["throughput"] = throughput(kafka.bootstrap, prefix, running, feed)
                else:
                    figures["latency"] = latency(running, feed)
        figures["broker"] = kafka.kind
    _print(console, figures)
    return figures


def _print(console: Console, figures: dict[str, Any]) -> None:
    rate = figures["throughput"]
    table = Table(title=f"overheard run through Kafka ({figures['broker']}), SQLite sink")
    for column in ("backlog", "posts/s in", "issues/s out", "issue share"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{rate['backlog_posts']:,}",
        f"{rate['posts_per_s_in']:,}",
        f"{rate['issues_per_s_out']:,}",
        f"{rate['issue_share']:.1%}",
    )
    console.print(table)
    table = Table(title="post sent → issue written, ms")
    for column in ("phase", "posts/s", "issues", "p50", "p99", "max"):
        table.add_column(column, justify="right")
    for phase in figures["latency"]["phases"]:
        table.add_row(
            phase["phase"],
            f"{phase['rate_posts_per_s']:g}",
            f"{phase['issues']:,}",
            f"{phase['p50_ms']:,}",
            f"{phase['p99_ms']:,}",
            f"{phase['max_ms']:,}",
        )
    console.print(table)
