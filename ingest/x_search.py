"""The live X connector: API v2 recent search through tweepy's `Client`.

Queries. Built from the city profile: the city's names (or `bounding_box:` when
`x.geo_operators` is on) AND the problem phrases of every category, minus posts from
and to the city's official accounts, minus retweets, in one language. The phrases are
longer than any access level's query limit, so they are packed into as many queries as
it takes (4 at 1024 characters for Baltimore); each query is a stream with its own
cursor, named after a hash of its text (a changed profile starts new streams).
Neighbourhood and street names are left to the classifier: every group of them would
multiply the queries, and each query costs a request per poll against the rate limit.

Pagination. Recent search returns the newest posts first, a page at a time. A poll
asks for posts after the stream's `since_id` and follows `next_token` to the oldest
page; only when the last page is delivered does `since_id` become the newest id the
poll saw. Until then the cursor keeps the old `since_id`, the `next_token` to resume
with and that newest id, so a restart mid-poll neither skips the older pages nor
re-reads the newer ones. A stored `next_token` X no longer accepts (400) restarts the
poll from `since_id`: a repeat, never a gap.

Failures. 429: wait until `x-rate-limit-reset` (or `x.rate_limit_wait_s` when the
answer names no reset time), logged and counted (`overheard_rate_limit_waits` and
`…_wait_seconds` on /metrics); tweepy's own
`wait_on_rate_limit` is not used, since it re-asks at once when the header is missing.
5xx, network errors and a torn body: `TransientError` (the poll is retried with
backoff). 401 and 403: `CredentialsRejected`, no retry.

Deletions. A referenced tweet the answer reports not found is recorded as deleted. Posts
deleted after they were read are found by X's batch compliance (`x_compliance.py`), which
each poll runs first when `x.compliance_every_h` has passed since the last check
(`recheck.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import requests
import tweepy

from overheard import __version__
from overheard.deadletter import DeadLetter
from overheard.errors import ConfigError, MessageError, TransientError
from overheard.model import Platform, Post, Provenance
from overheard.profile import CityProfile
from overheard.settings import XSettings

from .cursors import Cursor, CursorStore, Deletion
from .live import Batch, CredentialsRejected
from .normalise import as_dict, as_list, string
from .recheck import recheck_if_due
from .x_client import CONNECTOR, wait_for_reset, x_client
from .x_compliance import XCompliance
from .x_v2 import posts_from_response

log = logging.getLogger(__name__)

ENDPOINT = "/2/tweets/search/recent"

#: Every field `Post` is made of: text (long posts in note_tweet), time, author and their
#: profile location, language, entities, the geotag and its place, the thread.
TWEET_FIELDS = [
    "author_id",
    "conversation_id",
    "created_at",
    "entities",
    "geo",
    "lang",
    "note_tweet",
    "referenced_tweets",
]
EXPANSIONS = ["author_id", "geo.place_id", "referenced_tweets.id"]
USER_FIELDS = ["location", "username"]
PLACE_FIELDS = ["country_code", "full_name", "geo", "id", "name", "place_type"]

_BARE = re.compile(r"[A-Za-z0-9_]+")
_NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"


def quoted(term: str) -> str:
    """A term as the query language reads it: one word bare, anything else in quotes."""
    term = term.replace('"', "").strip()
    return term if _BARE.fullmatch(term) else f'"{term}"'


def _pack(terms: Iterable[str], budget: int) -> list[str]:
    """`(a OR b …)` groups, each at most `budget` characters, in the terms' order."""
    groups: list[list[str]] = [[]]
    for term in dict.fromkeys(quoted(t) for t in terms if t.strip()):
        if len(term) + 2 > budget:
            raise ConfigError(f"the X query term {term} alone is longer than the query limit")
        candidate = [*groups[-1], term]
        if len(" OR ".join(candidate)) + 2 > budget:
            groups.append([term])
        else:
            groups[-1] = candidate
    return [f"({' OR '.join(group)})" for group in groups if group]


def build_queries(profile: CityProfile, settings: XSettings) -> list[str]:
    """The recent-search queries that together cover the profile (see the module's doc)."""
    suffix = ["-is:retweet"]
    if settings.language:
        suffix.append(f"lang:{settings.language}")
    if settings.exclude_official_accounts:
        for account in profile.accounts.x:
            suffix += [f"-from:{account}", f"-to:{account}"]
    places = list(profile.city.names)
    geo: list[str] = []
    if settings.geo_operators:
        if settings.bounding_box is None:
            raise ConfigError("x.geo_operators is on but x.bounding_box is not set")
        geo = [f"bounding_box:[{' '.join(str(c) for c in settings.bounding_box)}]"]
    problems = [term for c in profile.categories.values() for term in c.problems]
    fixed = " ".join(suffix)
    budget = settings.max_query_length - len(fixed) - 2
    if budget < 40:
        raise ConfigError(
            f"x.max_query_length = {settings.max_query_length} leaves no room for terms "
            f"after the exclusions ({len(fixed)} characters); raise it or set "
            "x.exclude_official_accounts = false"
        )
    place_groups = _pack(places, budget // 2 - len(geo[0]) - 4 if geo else budget // 2)
    if geo:
        place_groups = [f"({group[1:-1]} OR {geo[0]})" for group in place_groups]
    problem_groups = _pack(problems, budget - max(len(g) for g in place_groups))
    return [f"{where} {what} {fixed}" for where in place_groups for what in problem_groups]


def stream_name(query: str) -> str:
    return "x:search:" + hashlib.sha256(query.encode()).hexdigest()[:12]


def deletions_in(response: dict[str, Any]) -> list[Deletion]:
    """Tweets the answer reports gone (a referenced tweet that was deleted): X's terms say
    a copy of a deleted tweet must go too."""
    gone = []
    for error in as_list(response.get("errors")):
        error = as_dict(error)
        native = string(error, "resource_id") or string(error, "value")
        if error.get("type") == _NOT_FOUND and error.get("resource_type") == "tweet" and native:
            gone.append(Deletion(Post.make_id(Platform.X, native), "deleted on X (not found)"))
    return gone


class XSearch:
    """Recent search over the profile's queries; a `LiveConnector`."""

    name = CONNECTOR

    def __init__(
        self,
        client: tweepy.Client,
        queries: list[str],
        settings: XSettings,
        stop: threading.Event,
        *,
        clock: Callable[[], float] = time.time,
        compliance: XCompliance | None = None,
        keep_days: int | None = None,
    ) -> None:
        self._client = client
        self.queries = queries
        self.settings = settings
        self.poll_interval_s = settings.poll_interval_s
        self._stop = stop
        self._clock = clock
        #: Asks X which posts sent were deleted since, every `x.compliance_every_h` hours.
        self.compliance = compliance
        self.keep_days = keep_days

    @classmethod
    def from_settings(
        cls,
        settings: XSettings,
        profile: CityProfile,
        stop: threading.Event,
        *,
        keep_days: int | None = None,
    ) -> XSearch:
        """`keep_days`: how long any sink keeps post text (`recheck.keep_days`); posts older
        than that are no longer checked for deletion. None: every post sent is."""
        client = x_client(settings)
        queries = build_queries(profile, settings)
        for query in queries:
            log.info("X stream %s searches: %s", stream_name(query), query)
        compliance = None
        if settings.compliance_every_h > 0:
            compliance = XCompliance(client, settings, stop)
        return cls(client, queries, settings, stop, compliance=compliance, keep_days=keep_days)

    def poll(self, cursors: CursorStore) -> Iterator[Batch]:
        yield from recheck_if_due(
            self.compliance, cursors, self.settings.compliance_every_h, self.keep_days
        )
        for query in self.queries:
            stream = stream_name(query)
            yield from self._poll_query(query, stream, cursors.load(stream))

    def _poll_query(self, query: str, stream: str, cursor: Cursor) -> Iterator[Batch]:
        since_id: str | None = cursor.get("since_id")
        token: str | None = cursor.get("next_token")
        newest: str | None = cursor.get("newest_id")
        while True:
            try:
                response = self._page(query, since_id, token)
            except tweepy.BadRequest as exc:
                if token is None:
                    raise ConfigError(f"X refused the query of {stream}: {exc}") from exc
                log.warning(
                    "X refused the stored next_token of %s (expired?): the poll starts again "
                    "after since_id %s, so posts already sent may be sent again",
                    stream,
                    since_id,
                )
                token, newest = None, None
                continue
            meta = as_dict(response.get("meta"))
            newest = newest or string(meta, "newest_id")
            token = string(meta, "next_token")
            after: Cursor
            if token:
                after = {"since_id": since_id, "next_token": token, "newest_id": newest}
            else:
                after = {"since_id": newest or since_id}
            yield Batch(stream, self._items(response), after, deletions_in(response))
            if not token or self._stop.is_set():
                return

    def _items(self, response: dict[str, Any]) -> list[Post | DeadLetter]:
        provenance = Provenance(
            connector=CONNECTOR,
            connector_version=__version__,
            collected_at=datetime.now(UTC),
            source=ENDPOINT,
        )
        items: list[Post | DeadLetter] = []
        for outcome in posts_from_response(response, provenance):
            if isinstance(outcome, MessageError):
                items.append(self._dead_letter(outcome, response))
            else:
                items.append(outcome)
        return items

    def _dead_letter(self, error: MessageError, response: dict[str, Any]) -> DeadLetter:
        return DeadLetter(
            stage="ingest",
            reason=str(error),
            error=type(error).__name__,
            origin=f"x{ENDPOINT}",
            original=json.dumps(response).encode(),
            at=datetime.now(UTC),
        )

    def _page(self, query: str, since_id: str | None, token: str | None) -> dict[str, Any]:
        while True:
            try:
                response = self._client.search_recent_tweets(
                    query,
                    max_results=self.settings.max_results,
                    since_id=since_id,
                    next_token=token,
                    tweet_fields=TWEET_FIELDS,
                    expansions=EXPANSIONS,
                    user_fields=USER_FIELDS,
                    place_fields=PLACE_FIELDS,
                )
            except tweepy.TooManyRequests as exc:
                self._wait_for_reset(exc.reset_time)
                continue
            except tweepy.Unauthorized as exc:
                raise CredentialsRejected(
                    "X refused the bearer token (401 Unauthorized): it is wrong, expired or "
                    "revoked. Set a valid one in OVERHEARD_X__BEARER_TOKEN; the X connector "
                    "stopped without retrying."
                ) from exc
            except tweepy.Forbidden as exc:
                raise CredentialsRejected(
                    "X refused the search (403 Forbidden): the app's access level does not "
                    "allow this endpoint or an operator of the query (geo operators need a "
                    "higher level; see x.geo_operators). The X connector stopped without "
                    "retrying."
                ) from exc
            except tweepy.TwitterServerError as exc:
                raise TransientError(f"X answered {exc.response.status_code}") from exc
            except requests.RequestException as exc:
                # Includes a body cut short (requests' JSONDecodeError): ask again.
                raise TransientError(f"X recent search failed: {type(exc).__name__}") from exc
            if not isinstance(response, dict):
                raise TransientError(f"X answered a JSON {type(response).__name__}")
            return response

    def _wait_for_reset(self, reset_time: int | None) -> None:
        wait_for_reset(reset_time, self.settings, self._stop, self._clock)
