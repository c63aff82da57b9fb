"""The live Reddit connector: new submissions and comments of the profile's subreddits (praw).

Each subreddit gives two streams, `reddit:r/<name>/submissions` and `…/comments`, read
with praw's stream generator (`praw.models.util.stream_generator`, what
`subreddit.stream.*` use) with `pause_after=-1` and `continue_after_id`: one request per
stream and poll (the `None` it yields after each response ends the batch), oldest
first, and `before=<fullname>` from the stored cursor after a restart. The cursor is
the newest fullname the stream delivered. praw keeps the ids it has seen, so an empty
answer to `before=` (the item was deleted) falls back to the newest listing without
repeats; after a restart that fallback can repeat up to a page, never skip one.

The listings are fetched as JSON (`Reddit.request`) rather than as praw's objects:
building those alone runs at about 8,000 comments/s here, half the speed of reading the
JSON straight into Posts.

Comments from `/r/<name>/comments` carry their thread: subreddit, parent, submission
and its title. Deleted and removed things (a `[deleted]`/`[removed]` body, a
submission's `removed_by_category`) are recorded as `Deletion`s, not sent.

Failures: prawcore retries a 5xx twice itself; after that, and for a torn body, a
429 or the network, `TransientError` (the poll is retried from the stored cursors with
backoff). A 401 (the app's id or secret refused) is `CredentialsRejected`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import praw
import prawcore
from praw.models.util import stream_generator

from overheard import __version__
from overheard.deadletter import DeadLetter
from overheard.errors import ConfigError, MessageError, TransientError
from overheard.model import Platform, Post, Provenance
from overheard.profile import CityProfile
from overheard.settings import RedditSettings

from .cursors import Cursor, CursorStore, Deletion
from .live import Batch, CredentialsRejected, redact_secrets
from .normalise import as_dict, as_list, attempt, string
from .reddit import Kind, post_from_data

log = logging.getLogger(__name__)

CONNECTOR = "reddit"
_GONE = frozenset({"[deleted]", "[removed]"})
_KINDS: dict[str, Kind] = {"submissions": "t3", "comments": "t1"}
#: The listing each stream reads, as praw's own `subreddit.stream.*` do.
_PATHS = {"submissions": "r/{}/new", "comments": "r/{}/comments/"}


@dataclass(frozen=True)
class _Thing:
    """A listing child as the stream generator wants it: an id to track, and its JSON."""

    name: str
    data: dict[str, Any]


def gone(data: dict[str, Any], kind: Kind) -> str | None:
    """Why the thing is no longer on Reddit, or None when it is."""
    if kind == "t1":
        body = (string(data, "body") or "").strip()
        return f"{body[1:-1]} on Reddit" if body in _GONE else None
    category = string(data, "removed_by_category")
    if category is not None:
        return f"removed on Reddit ({category})"
    selftext = (string(data, "selftext") or "").strip()
    if selftext in _GONE and data.get("author") == "[deleted]":
        return "deleted on Reddit"
    return None


class RedditStreams:
    """The profile's subreddits, two streams each; a `LiveConnector`."""

    name = CONNECTOR

    def __init__(
        self, reddit: praw.Reddit, subreddits: list[str], settings: RedditSettings
    ) -> None:
        self._reddit = reddit
        self.subreddits = subreddits
        self.streams = list(settings.streams)
        self.poll_interval_s = settings.poll_interval_s
        #: Per stream: praw's generator and the cursor its last batch should have stored.
        self._open: dict[str, tuple[Iterator[Any], Cursor]] = {}

    @classmethod
    def from_settings(cls, settings: RedditSettings, profile: CityProfile) -> RedditStreams:
        if settings.client_id is None or settings.client_secret is None:
            raise ConfigError(
                "the Reddit connector needs OVERHEARD_REDDIT__CLIENT_ID and "
                "OVERHEARD_REDDIT__CLIENT_SECRET"
            )
        if not profile.community.subreddits:
            raise ConfigError(f"the {profile.name} profile lists no [community] subreddits")
        client_id = settings.client_id.get_secret_value()
        secret = settings.client_secret.get_secret_value()
        redact_secrets(["prawcore", "praw"], [client_id, secret])
        reddit = praw.Reddit(
            client_id=client_id,
            client_secret=secret,
            user_agent=settings.user_agent,
            check_for_updates=False,
            check_for_async=False,
        )
        return cls(reddit, list(profile.community.subreddits), settings)

    def poll(self, cursors: CursorStore) -> Iterator[Batch]:
        for subreddit in self.subreddits:
            for kind in self.streams:
                yield from self._read(f"reddit:r/{subreddit}/{kind}", subreddit, kind, cursors)

    def _read(
        self, stream: str, subreddit: str, kind: str, cursors: CursorStore
    ) -> Iterator[Batch]:
        stored = cursors.load(stream)
        generator, expected = self._open.get(stream, (None, None))
        if generator is None or stored != expected:
            # First poll, or the last batch never committed: start again from what is stored.
            generator = stream_generator(
                partial(self._listing, _PATHS[kind].format(subreddit)),
                attribute_name="name",
                pause_after=-1,
                continue_after_id=stored.get("after"),
            )
        self._open.pop(stream, None)
        things: list[_Thing] = []
        try:
            for thing in generator:
                if thing is None:
                    break
                things.append(thing)
        except prawcore.PrawcoreException as exc:
            raise _failure(exc, subreddit) from exc
        cursor = {"after": things[-1].name} if things else stored
        self._open[stream] = (generator, cursor)
        if things:
            yield _batch(stream, _KINDS[kind], things, cursor)

    def _listing(self, path: str, *, limit: int, params: dict[str, Any]) -> list[_Thing]:
        """One page of a listing, newest first, as the stream generator calls it."""
        listing = self._reddit.request(method="GET", path=path, params={**params, "limit": limit})
        children = as_list(as_dict(as_dict(listing).get("data")).get("children"))
        things = [as_dict(child).get("data") for child in children]
        return [_Thing(t["name"], t) for t in things if isinstance(t, dict) and string(t, "name")]


def _batch(stream: str, kind: Kind, things: list[_Thing], cursor: Cursor) -> Batch:
    """The posts (or dead letters) of the things, oldest first, and the ones that are gone."""
    now = datetime.now(UTC)
    provenance = Provenance(
        connector=CONNECTOR, connector_version=__version__, collected_at=now, source=stream
    )
    batch = Batch(stream, [], cursor)
    for thing in things:
        reason = gone(thing.data, kind)
        if reason is not None:
            batch.deletions.append(Deletion(Post.make_id(Platform.REDDIT, thing.name), reason))
            continue
        outcome = attempt(post_from_data, thing.data, kind, provenance)
        if isinstance(outcome, MessageError):
            batch.items.append(
                DeadLetter(
                    stage="ingest",
                    reason=str(outcome),
                    error=type(outcome).__name__,
                    origin=stream,
                    original=json.dumps(thing.data).encode(),
                    at=now,
                )
            )
        else:
            batch.items.append(outcome)
    return batch


def _failure(exc: prawcore.PrawcoreException, subreddit: str) -> Exception:
    """What a prawcore error means here: refused credentials, a wrong subreddit, or a pause."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, prawcore.OAuthException) or status == 401:
        return CredentialsRejected(
            "Reddit refused the app's credentials (401): check OVERHEARD_REDDIT__CLIENT_ID "
            "and OVERHEARD_REDDIT__CLIENT_SECRET; the Reddit connector stopped without retrying."
        )
    if status in (403, 404) or isinstance(exc, prawcore.Redirect):
        return ConfigError(f"r/{subreddit} is private, banned or does not exist ({status})")
    return TransientError(f"Reddit request failed: {type(exc).__name__} {status or ''}".strip())
