"""Retrying transient failures: exponential backoff with jitter, never giving up on its own.

A transient failure (broker, database or server down) is retried until it
passes or the process is asked to stop; it is never skipped.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from overheard.errors import TransientError
from overheard.settings import RetrySettings

log = logging.getLogger(__name__)

T = TypeVar("T")


class Stopped(Exception):
    """The process was asked to stop while waiting to retry; the work stays uncommitted."""


def delays(settings: RetrySettings, rng: random.Random | None = None) -> Iterator[float]:
    """initial, initial·m, initial·m², … capped at max, each spread by ±jitter."""
    rng = rng or random.Random()
    delay = settings.initial_s
    while True:
        spread = delay * settings.jitter
        yield max(0.0, delay + rng.uniform(-spread, spread))
        delay = min(settings.max_s, delay * settings.multiplier)


def retry_transient(
    action: Callable[[], T],
    settings: RetrySettings,
    stop: threading.Event,
    what: str,
    on_retry: Callable[[TransientError, float], None] | None = None,
) -> T:
    """Run `action` until it does not raise TransientError; raise Stopped if `stop` is set."""
    waits = delays(settings)
    while True:
        try:
            return action()
        except TransientError as exc:
            wait = next(waits)
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, wait)
            if on_retry is not None:
                on_retry(exc, wait)
            if stop.wait(wait):
                raise Stopped(what) from exc
