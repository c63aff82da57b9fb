"""The open311 sink's filing rate against the local Open311 test server, by concurrency.

The server (``overheard.testing.open311_server``, services "baltimore") runs as a subprocess
on loopback, so the figure is the sink's own overhead plus the server's: HTTP, the form, the
SQLite ledger (intent before each POST, result after it). On loopback that is CPU-bound in
both processes, so concurrency buys little there. A real city's server answers in tens or
hundreds of milliseconds: the second column has the test server wait LATENCY_S before each
answer (its ``delay_s`` switch), which is what concurrency is for. The loopback figure is the
best of REPEATS runs; the latency figure is one run (the wait dominates the noise).

Each run files ISSUES new issues (service "SW-Dirty Alley": no required attribute; every
issue has a location) in batches of BATCH, into a fresh ledger. The concurrencies come from
OVERHEARD_BENCH_OPEN311_CONCURRENCY (a comma list, "1,4,8" by default).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from overheard.sinks.base import Written
from overheard.sinks.open311 import Open311Sink
from overheard.testing.open311_process import Open311Server
from tests.benchmarks.timing import REPEATS
from tests.factories import make_issue

ISSUES = 400
BATCH = 100
SERVICE_CODE = "SW-Dirty Alley"
API_KEY = "bench-open311-key"
ENV = "OVERHEARD_BENCH_OPEN311_CONCURRENCY"
#: The server's added wait per request in the second measurement.
LATENCY_S = 0.025


def concurrencies() -> list[int]:
    """The concurrencies to measure, from the environment ("1,4,8" by default)."""
    text = os.environ.get(ENV, "1,4,8")
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"{ENV} must be a comma list of integers, not {text!r}") from None
    if not values or min(values) < 1:
        raise SystemExit(f"{ENV} must list concurrencies of at least 1, not {text!r}")
    return values


def _one_run(server: Open311Server, concurrency: int, run: int) -> float:
    """Seconds to file ISSUES new issues with a fresh ledger."""
    issues = [
        make_issue(
            f"t3_b{concurrency}r{run}n{n}", category="dirty alley", service_code=SERVICE_CODE
        )
        for n in range(ISSUES)
    ]
    with tempfile.TemporaryDirectory() as folder:
        sink = Open311Sink(
            server.url,
            API_KEY,
            None,
            f"sqlite:///{folder}/ledger.db",
            30.0,
            concurrency=concurrency,
        )
        sink.open()
        try:
            started = time.perf_counter()
            for start in range(0, ISSUES, BATCH):
                outcomes = sink.write(issues[start : start + BATCH])
                if not all(isinstance(outcome, Written) for outcome in outcomes):
                    raise RuntimeError(f"open311 benchmark: not every issue was filed: {outcomes}")
            elapsed = time.perf_counter() - started
        finally:
            sink.close()
    server.clear()  # the server's store stays small, so every run meets the same server
    return elapsed


def run(console: Console) -> dict[str, Any]:
    levels = concurrencies()
    results: dict[str, Any] = {
        "issues": ISSUES,
        "batch": BATCH,
        "latency_ms": LATENCY_S * 1000,
        "by_concurrency": {},
    }
    by_concurrency: dict[str, dict[str, float]] = results["by_concurrency"]
    with Open311Server.start(services="baltimore", api_key=API_KEY) as server:
        _one_run(server, 1, -1)  # warm up: imports, the server's first requests
        for concurrency in levels:
            best = min(_one_run(server, concurrency, run) for run in range(REPEATS))
            by_concurrency[str(concurrency)] = {"requests_per_s": round(ISSUES / best, 1)}
        server.control(delay_s=LATENCY_S)
        for concurrency in levels:
            elapsed = _one_run(server, concurrency, REPEATS)
            by_concurrency[str(concurrency)]["with_latency_requests_per_s"] = round(
                ISSUES / elapsed, 1
            )
        server.reset()
    table = Table(
        title=f"open311 sink against the local test server, {ISSUES} issues, batches of {BATCH}"
    )
    latency = f"{LATENCY_S * 1000:g} ms"
    columns = ("concurrency", "requests/s", "vs. 1", f"requests/s, {latency} latency", "vs. 1")
    for column in columns:
        table.add_column(column, justify="right")
    base = by_concurrency.get("1", {})
    for concurrency in levels:
        figures = by_concurrency[str(concurrency)]
        row = [str(concurrency)]
        for key in ("requests_per_s", "with_latency_requests_per_s"):
            row.append(f"{figures[key]:,.1f}")
            row.append(f"{figures[key] / base[key]:.2f}×" if key in base else "-")
        table.add_row(*row)
    console.print(table)
    return results
