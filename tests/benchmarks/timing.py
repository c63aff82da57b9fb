"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable

REPEATS = 3


def best_rate(work: Callable[[], object], count: int, repeats: int = REPEATS) -> float:
    """Items per second of the fastest of `repeats` runs (the least disturbed by noise)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return count / best
