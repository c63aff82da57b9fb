"""Does a process pool pay for the replay's classify stage? Measured, not assumed.

The classify stage turns a batch of post records (bytes off the bus) into decisions.
In one process it decodes and classifies each batch; a pool (`multiprocessing`, fork,
one classifier per worker, ordered `imap` over slices of the batch so the decisions
keep their order) moves that work to the workers, but the stage contract (`Handled`,
the summary, the metrics) needs a `Decision` per post back in the main process, with
its post. Three ways over the same 20,000 records at 99% irrelevant posts:

- serial: decode + classify in this process, as `ClassifyStage.handle` does;
- pool, decisions: the workers return the decisions (pickled, posts included);
- pool, outcomes only: the workers return each outcome and each issue's bytes (what a
  stage contract that counted outcomes without decisions would need): the ceiling.

The replay took neither: its workers read their own share of the archives and return
outcomes (`overheard/replay_workers.py`); `replay_pipeline` measures them against one
process.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from overheard.classify.decide import Classifier, Decision
from overheard.model import Post
from overheard.pipeline import Pipeline
from overheard.settings import load_settings
from tests.benchmarks.cascade import labelled_posts
from tests.benchmarks.prefilter import corpus
from tests.benchmarks.timing import best_rate

SHARE = 0.99
BATCH = 500

_classifier: Classifier | None = None


def _start_worker() -> None:
    global _classifier
    _classifier = Pipeline.build(load_settings()).classifier()


def _decide(values: Sequence[bytes]) -> list[Decision]:
    assert _classifier is not None
    return _classifier.classify([Post.from_bytes(value) for value in values])


def _outcomes(values: Sequence[bytes]) -> list[tuple[str, bytes | None]]:
    return [
        (decision.outcome, decision.issue.to_bytes() if decision.issue else None)
        for decision in _decide(values)
    ]


def _slices(batch: Sequence[bytes], parts: int) -> list[Sequence[bytes]]:
    step = -(-len(batch) // parts)
    return [batch[start : start + step] for start in range(0, len(batch), step)]


def run(console: Console) -> dict[str, Any]:
    settings = load_settings()
    relevant, irrelevant = labelled_posts(settings.models.data_dir)
    values = [post.to_bytes() for post in corpus(relevant, irrelevant, SHARE, random.Random(23))]
    batches = [values[start : start + BATCH] for start in range(0, len(values), BATCH)]
    processes = min(2, os.cpu_count() or 1)
    _start_worker()
    serial = best_rate(lambda: [_decide(batch) for batch in batches], len(values), repeats=2)
    with multiprocessing.get_context("fork").Pool(processes, _start_worker) as pool:
        pool.map(_decide, _slices(values[:200], processes))  # every worker warm

        def pooled(work: Any) -> None:
            for batch in batches:
                list(pool.imap(work, _slices(batch, processes)))

        decisions = best_rate(lambda: pooled(_decide), len(values), repeats=2)
        outcomes = best_rate(lambda: pooled(_outcomes), len(values), repeats=2)
    figures = {
        "irrelevant_share": SHARE,
        "posts": len(values),
        "batch": BATCH,
        "processes": processes,
        "serial_posts_per_s": round(serial),
        "pool_decisions_posts_per_s": round(decisions),
        "pool_decisions_vs_serial": round(decisions / serial, 2),
        "pool_outcomes_only_posts_per_s": round(outcomes),
        "pool_outcomes_only_vs_serial": round(outcomes / serial, 2),
    }
    table = Table(title=f"classify stage, {processes} processes, {SHARE:.0%} irrelevant, posts/s")
    for column in ("serial", "pool: decisions", "×", "pool: outcomes only", "×"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{serial:,.0f}",
        f"{decisions:,.0f}",
        f"{figures['pool_decisions_vs_serial']}",
        f"{outcomes:,.0f}",
        f"{figures['pool_outcomes_only_vs_serial']}",
    )
    console.print(table)
    return figures
