"""A replay of 1,000,000 posts, with the process's resident memory along the way.

The archive is the shared r/baltimore sample repeated, each copy with its own ids
(`t3_<copy><id>`), gzipped under var/bench/ and written once. The replay is the
in-process one `overheard replay` runs (classify with geo and the text models, the
SQLite sink); after each chunk the resident set size is read from /proc/self/status.
Memory is flat when the resident set at the end is about that at 10% of the posts.
`OVERHEARD_BENCH_POSTS` replays fewer posts (a multiple of the sample's 1,000).
"""

from __future__ import annotations

import csv
import gzip
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from overheard.ingest.archive import Position
from overheard.paths import CONFIG_DIR
from overheard.pipeline import Pipeline, replay
from overheard.settings import load_settings

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"
BENCH_DIR = Path(__file__).resolve().parents[2] / "var" / "bench"
POSTS = int(os.environ.get("OVERHEARD_BENCH_POSTS", "1000000"))
MARKS = (0.1, 0.5)
COLLECTED_AT = datetime(2026, 11, 23, tzinfo=UTC)


def rss_mb(field: str = "VmRSS") -> float:
    """The process's resident set (`VmRSS`) or its peak (`VmHWM`), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def write_archive(posts: int) -> Path:
    """The sample repeated to `posts` rows with unique ids; kept once written."""
    path = BENCH_DIR / f"replay-{posts}.csv.gz"
    if path.exists():
        return path
    with SAMPLE.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    ids, names = header.index("id"), header.index("name")
    partial = path.with_suffix(".partial")
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    with gzip.open(partial, "wt", newline="", compresslevel=1) as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for copy in range(posts // len(rows)):
            for row in rows:
                unique = f"{copy:04d}{row[ids]}"
                writer.writerow(
                    [*row[:ids], unique, *row[ids + 1 : names], f"t3_{unique}", *row[names + 1 :]]
                )
    partial.rename(path)
    return path


def run(console: Console) -> dict[str, Any]:
    archive = write_archive(POSTS)
    database = BENCH_DIR / "replay-memory.db"
    database.unlink(missing_ok=True)
    settings = load_settings(flags={"database": {"url": f"sqlite:///{database}"}, "sinks": ["sql"]})
    pipeline = Pipeline.build(settings)
    samples: list[tuple[int, float]] = []
    before = rss_mb()

    def sample(_position: Position) -> None:
        samples.append((pipeline.summary.posts_read, rss_mb()))

    started = time.perf_counter()
    # One process: /proc/self/status would not see the memory of replay workers.
    summary = replay(pipeline, [archive], collected_at=COLLECTED_AT, on_progress=sample, workers=1)
    took = time.perf_counter() - started
    end = rss_mb()
    read = summary.posts_read
    at = {mark: next(mb for posts, mb in samples if posts >= mark * read) for mark in MARKS}
    figures = {
        "posts": read,
        "issues": sum(summary.issues_by_category.values()),
        "posts_per_s": round(read / took),
        "rss_mb": {
            "before_replay": round(before, 1),
            "first_chunk": round(samples[0][1], 1),
            **{f"at_{mark:.0%}": round(mb, 1) for mark, mb in at.items()},
            "end": round(end, 1),
            "peak_sampled": round(max(mb for _, mb in samples), 1),
            "peak_vmhwm": round(rss_mb("VmHWM"), 1),
        },
        "growth_10pct_to_end_mb": round(end - at[0.1], 1),
    }
    table = Table(title=f"replay of {read:,} posts: resident memory (MiB)")
    for column in ("before", "1st chunk", "10%", "50%", "end", "peak", "posts/s"):
        table.add_column(column, justify="right")
    rss = figures["rss_mb"]
    table.add_row(
        *(
            f"{rss[key]:.0f}"
            for key in ("before_replay", "first_chunk", "at_10%", "at_50%", "end", "peak_vmhwm")
        ),
        f"{figures['posts_per_s']:,}",
    )
    console.print(table)
    return figures
