"""Ctrl-C during a replay, acted on where the replay can stop cleanly.

Python's own SIGINT handler raises KeyboardInterrupt at whatever bytecode the main thread
runs next. When that is a finaliser or a weakref callback run by the garbage collector
(SQLAlchemy registers such callbacks), the exception cannot propagate: Python prints
"Exception ignored in ..." and the replay runs on to its end as if no Ctrl-C had come.

`Interruption` replaces that handler for the length of a replay. The handler only records
the request, sets the replay's stop event (so feeding, pacing and retry waits end) and
makes `fileno()` readable (so a wait on worker pipes wakes); nothing is raised inside
whatever code it interrupts. The replay raises KeyboardInterrupt itself, from `check()`,
between chunks, and at the latest when the `Interruption` ends, so the request can never
be lost. Until `defer()` is called (the replay's start-up: models, gazetteer, topics) the
handler also raises at once, so a long start-up step stays interruptible. A second Ctrl-C
always raises at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any


class Interruption:
    """SIGINT as a request to stop, for the main thread's `with` block; inert elsewhere."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.requested = False
        self._deferring = False
        self._installed = False
        self._previous: Callable[[int, FrameType | None], Any] | int = signal.SIG_DFL
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def __enter__(self) -> Interruption:
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._handle)
            # None: a handler not set from Python, which cannot be set back from it.
            self._previous = signal.SIG_DFL if previous is None else previous
            self._installed = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
        os.close(self._read)
        os.close(self._write)
        # What followed the request (a retry given up on the stop event, say) is reported
        # as the interruption it is.
        if self.requested and not isinstance(error, KeyboardInterrupt):
            raise KeyboardInterrupt from error

    def defer(self) -> None:
        """From now on a (first) Ctrl-C is acted on only at `check()` and at the end."""
        self._deferring = True
        self.check()

    def check(self) -> None:
        """Raise KeyboardInterrupt if a Ctrl-C came."""
        if self.requested:
            raise KeyboardInterrupt

    def fileno(self) -> int:
        """Readable once a Ctrl-C came: for `multiprocessing.connection.wait`."""
        return self._read

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        again = self.requested
        self.requested = True
        self.stop.set()
        with contextlib.suppress(BlockingIOError):  # full: readable already
            os.write(self._write, b"\0")
        if again or not self._deferring:
            raise KeyboardInterrupt
