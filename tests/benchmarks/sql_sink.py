"""The SQL sink's write throughput, batches of 500, into SQLite and a real PostgreSQL.

PostgreSQL is the test session's kind: started from Debian's binaries on a free
port (or OVERHEARD_TEST_DATABASE_URL). Each run writes fresh issue ids, so every
insert is real; a second pass over the same ids measures redelivery, which the
sink absorbs with ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from typing import Any

from rich.console import Console
from rich.table import Table

from overheard.sinks.sql import SqlSink
from tests.benchmarks.timing import REPEATS, best_rate
from tests.factories import make_issue
from tests.support.postgres_server import fresh_schema, session_database
from tests.support.processes import ServiceUnavailable

BATCH = 500
ISSUES = 5_000


def _rates(url: str) -> dict[str, float]:
    sink = SqlSink(url)
    sink.open()
    unwritten = [[make_issue(f"t3_r{r}x{n}") for n in range(ISSUES)] for r in range(REPEATS)]

    def fresh() -> None:
        issues = unwritten.pop()
        for start in range(0, ISSUES, BATCH):
            sink.write(issues[start : start + BATCH])

    again = [make_issue(f"t3_again{n}") for n in range(ISSUES)]
    sink.write(again)

    def redelivered() -> None:
        for start in range(0, ISSUES, BATCH):
            sink.write(again[start : start + BATCH])

    try:
        return {
            "new_issues_per_s": round(best_rate(fresh, ISSUES)),
            "redelivered_issues_per_s": round(best_rate(redelivered, ISSUES)),
        }
    finally:
        sink.close()


def run(console: Console) -> dict[str, Any]:
    results: dict[str, Any] = {"batch": BATCH, "issues": ISSUES}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = _rates(f"sqlite:///{folder}/bench.db")
    with ExitStack() as stack:
        try:
            server = stack.enter_context(session_database())
        except ServiceUnavailable as reason:
            results["postgresql"] = {"skipped": str(reason)}
        else:
            results["postgresql"] = _rates(stack.enter_context(fresh_schema(server)))
    table = Table(title=f"SQL sink, batches of {BATCH}, {ISSUES} issues")
    for column in ("database", "new issues/s", "redelivered issues/s"):
        table.add_column(column, justify="right")
    for database in ("sqlite", "postgresql"):
        figures = results[database]
        if "skipped" in figures:
            table.add_row(database, "skipped", figures["skipped"])
        else:
            table.add_row(
                database,
                f"{figures['new_issues_per_s']:,}",
                f"{figures['redelivered_issues_per_s']:,}",
            )
    console.print(table)
    return results
