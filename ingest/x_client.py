"""The tweepy client every X request goes through, and X's rate limit waited out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import tweepy

from overheard import metrics
from overheard.errors import ConfigError
from overheard.retry import Stopped
from overheard.settings import XSettings

from .live import redact_secrets

log = logging.getLogger(__name__)

CONNECTOR = "x"


def x_client(settings: XSettings) -> tweepy.Client:
    """An app-only client with the bearer token, masked in tweepy's own debug log; tweepy's
    `wait_on_rate_limit` is off (`wait_for_reset` is used instead)."""
    if settings.bearer_token is None:
        raise ConfigError("the X connector needs a bearer token in OVERHEARD_X__BEARER_TOKEN")
    token = settings.bearer_token.get_secret_value()
    redact_secrets(["tweepy.client"], [token])
    return tweepy.Client(bearer_token=token, return_type=dict, wait_on_rate_limit=False)


def wait_for_reset(
    reset_time: int | None, settings: XSettings, stop: threading.Event, clock: Callable[[], float]
) -> None:
    """Wait out X's rate limit until `reset_time` (or `x.rate_limit_wait_s` when the answer
    named none: tweepy's own wait would ask again at once), logged and counted; raises
    Stopped when `stop` is set meanwhile."""
    if reset_time is not None:
        wait = max(1.0, reset_time - clock() + 1)
        until = datetime.fromtimestamp(reset_time, UTC).isoformat(timespec="seconds")
        log.warning("X rate limit reached: waiting %.0f s, until %s", wait, until)
    else:
        wait = settings.rate_limit_wait_s
        log.warning(
            "X rate limit reached with no reset time: waiting %.0f s (x.rate_limit_wait_s)",
            wait,
        )
    metrics.rate_limited(CONNECTOR, wait)
    if stop.wait(wait):
        raise Stopped("waiting for X's rate limit")
