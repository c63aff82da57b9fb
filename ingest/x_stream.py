"""The live X connector on the filtered stream (tweepy's `StreamingClient`), when
`x.filtered_stream` is on and the app's access level includes it.

Rules. The recent-search queries (`x_search.build_queries`) are the rules, each tagged
with its stream name; rules tagged by overheard that the profile no longer makes are
deleted, rules anyone else added are left alone.

Cursors. The stream has no `since_id`: a connection delivers what matches from the moment
it opens. So each post is committed under the cursor of the rule it matched first, the
very cursor recent search keeps for that query (`{"since_id": newest id}`), and before
every connection, the first one included, a recent-search poll (`XSearch.poll`) fetches
what was posted after those cursors. A restart or a dropped connection therefore misses
nothing recent search still holds (its last 7 days); a post matching several rules moves
the first one's cursor only, so the backfill may send it again (a duplicate the classify
stage absorbs, never a gap). What a longer outage misses is lost.

Reconnecting. Any disconnection ends the connection (tweepy does not reconnect on its
own here, so that the backfill runs first), then waits as X's guide on disconnections
asks: 0.25 s more per network error up to 16 s; doubling from 5 s up to 320 s after an
HTTP error, from 60 s after a 429; nothing after a clean close. 401 and 403 stop the
connector (`CredentialsRejected`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import requests
import tweepy

from overheard import __version__
from overheard.deadletter import DeadLetter
from overheard.errors import ConfigError, MessageError, TransientError
from overheard.model import Post, Provenance
from overheard.profile import CityProfile
from overheard.settings import XSettings

from .cursors import CursorStore
from .live import Batch, CredentialsRejected, redact_secrets
from .normalise import as_dict, as_list, string
from .recheck import recheck_if_due
from .x_search import EXPANSIONS, PLACE_FIELDS, TWEET_FIELDS, USER_FIELDS, XSearch, stream_name
from .x_v2 import posts_from_response

log = logging.getLogger(__name__)

ENDPOINT = "/2/tweets/search/stream"
#: A batch is sent once this many posts arrived, or the stream was quiet this long.
BATCH_POSTS = 100
BATCH_QUIET_S = 1.0

Event = tuple[str, Any]


class _Listener(tweepy.StreamingClient):
    """One connection: every line and every end of it, in order, onto `events`."""

    def __init__(self, token: str, events: queue.Queue[Event]) -> None:
        super().__init__(token, return_type=dict, max_retries=0, daemon=True)
        self.events = events
        self.connections = 0

    def on_connect(self) -> None:
        # tweepy connects again by itself when a response ends without its connection
        # reported closed: end that one too, so that the backfill runs before reading on.
        self.connections += 1
        if self.connections > 1:
            self.events.put(("closed", None))
            self.disconnect()

    def on_data(self, raw_data: bytes) -> None:
        self.events.put(("data", raw_data))

    def on_request_error(self, status_code: int) -> None:
        self.events.put(("http", status_code))
        self.disconnect()

    def on_connection_error(self) -> None:
        self.events.put(("network", None))
        self.disconnect()

    def on_closed(self, response: Any) -> None:
        self.events.put(("closed", None))
        self.disconnect()

    def on_exception(self, exception: Exception) -> None:
        self.events.put(("exception", exception))

    def on_disconnect(self) -> None:
        self.events.put(("ended", None))


class Backoff:
    """How long to wait before connecting again, as X's guide on disconnections says."""

    def __init__(self) -> None:
        self.network_s = 0.0
        self.http_s = 0.0

    def after(self, kind: str, status: int | None = None) -> float:
        if kind == "network":
            self.network_s = min(16.0, self.network_s + 0.25)
            return self.network_s
        if kind == "http":
            start = 60.0 if status == 429 else 5.0
            self.http_s = start if self.http_s < start else min(320.0, self.http_s * 2)
            return self.http_s
        return 0.0

    def reset(self) -> None:
        self.network_s = self.http_s = 0.0


class XStream:
    """The filtered stream, backfilled by recent search; a `LiveConnector`."""

    name = "x"
    #: The stream delivers continuously: the next poll follows at once.
    poll_interval_s = 0.0

    def __init__(self, search: XSearch, token: str, stop: threading.Event) -> None:
        self.search = search
        self._token = token
        self._stop = stop
        self.backoff = Backoff()
        self._events: queue.Queue[Event] = queue.Queue()
        self._listener: _Listener | None = None
        self._rules_synced = False

    @classmethod
    def from_settings(
        cls,
        settings: XSettings,
        profile: CityProfile,
        stop: threading.Event,
        *,
        keep_days: int | None = None,
    ) -> XStream:
        search = XSearch.from_settings(settings, profile, stop, keep_days=keep_days)
        assert settings.bearer_token is not None  # XSearch.from_settings checked it
        token = settings.bearer_token.get_secret_value()
        redact_secrets(["tweepy.streaming"], [token])
        return cls(search, token, stop)

    def poll(self, cursors: CursorStore) -> Iterator[Batch]:
        if self._listener is None:
            yield from self.search.poll(cursors)  # what was posted since the cursors
            if self._stop.is_set():
                return
            self.sync_rules()
            self._connect()
        settings = self.search.settings
        yield from recheck_if_due(
            self.search.compliance, cursors, settings.compliance_every_h, self.search.keep_days
        )
        yield from self._drain(cursors)

    def sync_rules(self) -> None:
        """Make the stream's rules those of the profile (once per process)."""
        if self._rules_synced:
            return
        client = _Listener(self._token, self._events)
        wanted = {stream_name(q): q for q in self.search.queries}
        present = [as_dict(r) for r in as_list(_call(client.get_rules).get("data"))]
        stale = [
            string(r, "id")
            for r in present
            if (string(r, "tag") or "").startswith("x:search:")
            and wanted.get(string(r, "tag") or "") != string(r, "value")
        ]
        kept = {string(r, "tag") for r in present if string(r, "id") not in stale}
        if stale:
            _call(lambda: client.delete_rules([s for s in stale if s]))
        missing = [tweepy.StreamRule(q, tag=tag) for tag, q in wanted.items() if tag not in kept]
        if missing:
            _call(lambda: client.add_rules(missing))
        log.info(
            "X filtered stream: %d rules (%d added, %d deleted)",
            len(wanted),
            len(missing),
            len(stale),
        )
        self._rules_synced = True

    def _connect(self) -> None:
        self._listener = _Listener(self._token, self._events)
        self._listener.filter(
            threaded=True,
            tweet_fields=TWEET_FIELDS,
            expansions=EXPANSIONS,
            user_fields=USER_FIELDS,
            place_fields=PLACE_FIELDS,
        )
        log.info("X filtered stream connected")

    def _drain(self, cursors: CursorStore) -> Iterator[Batch]:
        """Batches of what arrived, until the stream is quiet, full or gone."""
        lines: list[bytes] = []
        ended: Event | None = None
        deadline = time.monotonic() + BATCH_QUIET_S
        while len(lines) < BATCH_POSTS and not self._stop.is_set():
            try:
                event = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event[0] == "data":
                lines.append(event[1])
                deadline = time.monotonic() + BATCH_QUIET_S
            elif event[0] == "ended":
                break
            elif ended is None:
                ended = event
        if lines:
            self.backoff.reset()
            yield from _batches(lines, cursors)
        if ended is not None or self._stop.is_set():
            self._disconnected(ended)

    def _disconnected(self, event: Event | None) -> None:
        """Close the connection; raise for refused credentials, else wait as X asks."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.disconnect()
            if listener.thread is not None:
                # A daemon thread: it ends at the next keep-alive (X sends one every 20 s)
                # or with the process; a stop need not wait for it.
                listener.thread.join(timeout=None if event else 1.0)
        self._events = queue.Queue()
        if event is None:
            return
        kind, detail = event
        if kind == "http" and detail in (401, 403):
            raise CredentialsRejected(
                f"X refused the filtered stream ({detail}): the bearer token is wrong or "
                "expired, or the app's access level does not include the filtered stream "
                "(set x.filtered_stream = false to poll recent search instead). The X "
                "connector stopped without retrying."
            )
        if kind == "exception":
            raise TransientError(f"X filtered stream failed: {type(detail).__name__}")
        wait = self.backoff.after(kind, detail)
        log.warning(
            "X filtered stream disconnected (%s%s); connecting again in %.2f s, after a "
            "recent-search backfill",
            kind,
            f" {detail}" if detail is not None else "",
            wait,
        )
        self._stop.wait(wait)


def _batches(lines: list[bytes], cursors: CursorStore) -> Iterator[Batch]:
    """One batch per rule stream, each post under the first rule it matched."""
    provenance = Provenance(
        connector="x",
        connector_version=__version__,
        collected_at=datetime.now(UTC),
        source=ENDPOINT,
    )
    by_stream: dict[str, Batch] = {}
    for line in lines:
        try:
            message = as_dict(json.loads(line))
        except ValueError as exc:
            raise TransientError("a line of X's filtered stream is not JSON") from exc
        rules = [as_dict(r) for r in as_list(message.get("matching_rules"))]
        tags = [string(r, "tag") for r in rules]
        stream = next((t for t in tags if t and t.startswith("x:search:")), None)
        if stream is None:
            continue  # matched only rules overheard did not make
        batch = by_stream.setdefault(stream, Batch(stream, [], dict(cursors.load(stream))))
        native = string(as_dict(message.get("data")), "id")
        if native and _newer(native, batch.cursor.get("since_id")):
            batch.cursor = {"since_id": native}
        for outcome in posts_from_response(message, provenance):
            batch.items.append(_item(outcome, line))
    yield from by_stream.values()


def _item(outcome: Post | MessageError, line: bytes) -> Post | DeadLetter:
    if isinstance(outcome, Post):
        return outcome
    return DeadLetter(
        stage="ingest",
        reason=str(outcome),
        error=type(outcome).__name__,
        origin=f"x{ENDPOINT}",
        original=line,
        at=datetime.now(UTC),
    )


def _newer(native: str, since_id: Any) -> bool:
    if not isinstance(since_id, str) or not since_id.isdigit():
        return True
    return native.isdigit() and int(native) > int(since_id)


def _call(request: Callable[[], Any]) -> dict[str, Any]:
    """A rules request; X's answers mapped as recent search maps them."""
    try:
        response = request()
    except (tweepy.Unauthorized, tweepy.Forbidden) as exc:
        raise CredentialsRejected(
            f"X refused the filtered stream's rules ({exc.response.status_code}): the bearer "
            "token is wrong or expired, or the app's access level does not include the "
            "filtered stream (set x.filtered_stream = false). Stopped without retrying."
        ) from exc
    except tweepy.BadRequest as exc:
        raise ConfigError(f"X refused a filtered stream rule: {exc}") from exc
    except tweepy.TweepyException as exc:  # 429, 5xx
        raise TransientError(f"X's filtered stream rules: {type(exc).__name__}") from exc
    except requests.RequestException as exc:
        raise TransientError(f"X's filtered stream rules: {type(exc).__name__}") from exc
    return as_dict(response)


def x_connector(
    settings: XSettings, profile: CityProfile, stop: threading.Event, *, keep_days: int | None
) -> XSearch | XStream:
    """The filtered stream when `x.filtered_stream` is on, else recent search."""
    if settings.filtered_stream:
        return XStream.from_settings(settings, profile, stop, keep_days=keep_days)
    return XSearch.from_settings(settings, profile, stop, keep_days=keep_days)
