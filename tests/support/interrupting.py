"""`overheard replay` as a user runs and interrupts it: a child process, Ctrl-C when ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: The one line `overheard replay` says when a Ctrl-C ends it.
INTERRUPTED = "replay interrupted: no summary; the sinks keep what was written before it"


def dead_letters_logged(log: Path) -> int:
    return log.read_text(errors="replace").count("dead letter from ingest")


def interrupt_replay(
    arguments: Sequence[str],
    env: dict[str, str],
    log: Path,
    ready: Callable[[subprocess.Popen[bytes]], bool],
    stdout: Path | None = None,
    ended_within_s: float = 30,
) -> list[int]:
    """Run `overheard replay ARGUMENTS`, send SIGINT once `ready(process)` and check that it
    ended with exit 130 and the one line, without a traceback; returns the pids of its
    children when the signal went (a replay's workers)."""
    with log.open("wb") as stderr, (stdout or Path(os.devnull)).open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "overheard", "replay", *arguments],
            env={**os.environ, **env},
            stdout=out,
            stderr=stderr,
            # A shell started in the background ignores SIGINT, and its children with it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 120
        while not ready(process) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, log.read_text()[-2000:]
        assert ready(process), "the replay never got ready to be interrupted"
        children = children_of(process.pid)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=ended_within_s) == 130, log.read_text()[-2000:]
    finally:
        process.kill()
        process.wait()
    said = log.read_text()
    assert said.splitlines()[-1] == INTERRUPTED
    assert "Traceback" not in said
    return children


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
