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
submission's `removed_by_category`, a `[deleted]` author; `reddit.gone`) are recorded as
`Deletion`s, not sent. Things removed after they were read are found by asking Reddit
about every post sent (`reddit_recheck.py`), which each poll does first when
`reddit.recheck_every_h` has passed since the last check (`recheck.py`).

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
from overheard.errors import ConfigError, MessageError
from overheard.model import Platform, Post, Provenance
from overheard.profile import CityProfile
from overheard.settings import RedditSettings

from .cursors import Cursor, CursorStore, Deletion
from .live import Batch
from .normalise import as_dict, as_list, attempt, string
from .recheck import recheck_if_due
from .reddit import Kind, gone, post_from_data
from .reddit_client import failure, reddit_client
from .reddit_recheck import RedditRecheck

log = logging.getLogger(__name__)

CONNECTOR = "reddit"
_KINDS: dict[str, Kind] = {"submissions": "t3", "comments": "t1"}
#: The listing each stream reads, as praw's own `subreddit.stream.*` do.
_PATHS = {"submissions": "r/{}/new", "comments": "r/{}/comments/"}


@dataclass(frozen=True)
class _Thing:
    """A listing child as the stream generator wants it: an id to track, and its JSON."""

    name: str
    data: dict[str, Any]


class RedditStreams:
    """The profile's subreddits, two streams each; a `LiveConnector`."""

    name = CONNECTOR

    def __init__(
        self,
        reddit: praw.Reddit,
        subreddits: list[str],
        settings: RedditSettings,
        *,
        recheck: RedditRecheck | None = None,
        keep_days: int | None = None,
    ) -> None:
        self._reddit = reddit
        self.subreddits = subreddits
        self.streams = list(settings.streams)
        self.poll_interval_s = settings.poll_interval_s
        #: Asks Reddit which posts sent are gone since, every `reddit.recheck_every_h` hours.
        self.recheck = recheck
        self.recheck_every_h = settings.recheck_every_h
        self.keep_days = keep_days
        #: Per stream: praw's generator and the cursor its last batch should have stored.
        self._open: dict[str, tuple[Iterator[Any], Cursor]] = {}

    @classmethod
    def from_settings(
        cls, settings: RedditSettings, profile: CityProfile, *, keep_days: int | None = None
    ) -> RedditStreams:
        """`keep_days`: how long any sink keeps post text (`recheck.keep_days`); posts older
        than that are no longer checked for removal. None: every post sent is."""
        if not profile.community.subreddits:
            raise ConfigError(f"the {profile.name} profile lists no [community] subreddits")
        reddit = reddit_client(settings)
        recheck = RedditRecheck(reddit) if settings.recheck_every_h > 0 else None
        return cls(
            reddit,
            list(profile.community.subreddits),
            settings,
            recheck=recheck,
            keep_days=keep_days,
        )

    def poll(self, cursors: CursorStore) -> Iterator[Batch]:
        yield from recheck_if_due(self.recheck, cursors, self.recheck_every_h, self.keep_days)
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
            raise failure(exc, f"r/{subreddit}") from exc
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
