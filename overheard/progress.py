"""The replay's progress line on stderr: posts read, posts/s, issues, dead letters, ETA.

Drawn only when stderr is a terminal; otherwise `ReplayProgress` does nothing, so
logs, pipes, tests and CI see no progress output. The ETA comes from the byte
position in the archives against their size, so it is left out when an archive is
compressed (its position counts bytes of the decompressed stream).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from overheard.ingest.archive import Position
from overheard.summary import Summary

_COMPRESSED = (".gz", ".bz2")


class ReplayProgress:
    def __init__(
        self, archives: Sequence[Path], summary: Summary, console: Console | None = None
    ) -> None:
        self.summary = summary
        self._console = console or Console(stderr=True)
        paths = [str(p.resolve()) for p in archives]
        sizes = [p.stat().st_size for p in archives]
        # Bytes of the archives before each one, to add to a position inside it.
        self._before = {path: sum(sizes[:i]) for i, path in enumerate(paths)}
        compressed = any(p.name.endswith(_COMPRESSED) for p in archives)
        self._total: int | None = None if compressed else sum(sizes)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started = 0.0

    def __enter__(self) -> ReplayProgress:
        if not self._console.is_terminal:
            return self
        self._progress = Progress(
            TextColumn("replaying"),
            BarColumn(),
            TextColumn("{task.fields[posts]} posts, {task.fields[rate]:.0f}/s"),
            TextColumn("{task.fields[issues]} issues, {task.fields[dead]} dead letters"),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._task = self._progress.add_task(
            "replay", total=self._total, posts=0, rate=0.0, issues=0, dead=0
        )
        self._started = time.monotonic()
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, position: Position) -> None:
        """Called after each chunk of an archive was delivered (`pipeline.replay`)."""
        if self._progress is None or self._task is None:
            return
        summary = self.summary
        posts = summary.posts_read
        elapsed = time.monotonic() - self._started
        self._progress.update(
            self._task,
            completed=self._before.get(position.path, 0) + position.offset,
            posts=posts,
            rate=posts / elapsed if elapsed > 0 else 0.0,
            issues=sum(summary.issues_by_category.values()),
            dead=sum(summary.deadletters.values()),
        )
