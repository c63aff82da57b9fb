"""`make bench`: every benchmark, printed as tables and written to var/bench/latest.json.

One key per benchmark; each run replaces the keys it measured and keeps the others.
Ratios are always taken within one run, since these machines are noisy.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from tests.benchmarks import (
    broker_pipeline,
    cascade,
    clusters,
    geo_gazetteer,
    geo_places,
    ingest_normalise,
    open311_sink,
    prefilter,
    replay_memory,
    replay_pipeline,
    replay_pool,
    sql_sink,
)

OUTPUT = Path(__file__).resolve().parents[2] / "var" / "bench" / "latest.json"
BENCHMARKS: dict[str, Callable[[Console], dict[str, Any]]] = {
    "prefilter": prefilter.run,
    "sql_sink": sql_sink.run,
    "open311_sink": open311_sink.run,
    "geo_gazetteer": geo_gazetteer.run,
    "geo_places": geo_places.run,
    "cascade": cascade.run,
    "ingest_normalise": ingest_normalise.run,
    "clusters": clusters.run,
    "replay_memory": replay_memory.run,
    "replay_pipeline": replay_pipeline.run,
    "replay_pool": replay_pool.run,
    "broker_pipeline": broker_pipeline.run,
}

#: Benchmarks that take minutes, run only when named (`make bench-memory`).
ON_DEMAND = frozenset({"replay_memory"})


def main() -> None:
    """Every benchmark, or those named on the command line."""
    console = Console()
    report = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {}
    chosen = sys.argv[1:] or [name for name in BENCHMARKS if name not in ON_DEMAND]
    unknown = set(chosen) - BENCHMARKS.keys()
    if unknown:
        known = ", ".join(BENCHMARKS)
        raise SystemExit(f"no benchmark {', '.join(sorted(unknown))}; known: {known}")
    for name in chosen:
        benchmark = BENCHMARKS[name]
        figures = benchmark(console)
        figures["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        figures["machine"] = platform.platform()
        report[name] = figures
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"written to {OUTPUT}")


if __name__ == "__main__":
    main()
