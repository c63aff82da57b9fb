"""Replaying the platforms' recorded HTTP exchanges (tests/ingest/cassettes) with vcrpy.

Nothing reaches the network: record_mode "none" raises on any request no cassette
holds. Requests match on method, host, path (percent-decoded, since praw's masked
`<TEST_SUBREDDIT>` is sent encoded) and the paging parameters (next_token, since_id,
before), which must be those of the recorded request, so a connector that forgot to
page, or paged from the wrong place, fails. Every recorded answer is played once, in order.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import vcr
from vcr.cassette import Cassette
from vcr.request import Request

from overheard.bus.base import Topics
from overheard.bus.memory import MemoryBus
from overheard.ingest.cursors import CursorStore
from overheard.ingest.live import LiveConnector, poll_once
from overheard.profile import CityProfile, Community, load_profile
from overheard.settings import RetrySettings
from overheard.summary import Summary

CASSETTES = Path(__file__).resolve().parent / "cassettes"
PAGING = ("next_token", "since_id", "before")
FAST_RETRY = RetrySettings(initial_s=0.01, max_s=0.05, multiplier=2.0, jitter=0.0)


def _path(live: Request, recorded: Request) -> None:
    assert unquote(live.path) == unquote(recorded.path)


def _paging(live: Request, recorded: Request) -> None:
    wanted = {k: v for k, v in recorded.query if k in PAGING}
    sent = {k: v for k, v in live.query if k in PAGING}
    assert sent == wanted, (sent, wanted)


_VCR = vcr.VCR(record_mode="none", match_on=["method", "host", "decoded_path", "paging"])
_VCR.register_matcher("decoded_path", _path)
_VCR.register_matcher("paging", _paging)


@contextmanager
def cassette(name: str, *, every_answer: bool = True) -> Iterator[Cassette]:
    """Replay `cassettes/<name>` (YAML for X, JSON for Reddit); with `every_answer`, each
    recorded answer must have been asked for."""
    serializer = "json" if name.endswith(".json") else "yaml"
    with _VCR.use_cassette(str(CASSETTES / name), serializer=serializer) as played:
        yield played
    if every_answer:
        assert played.all_played, f"{name}: {len(played) - played.play_count} answers unused"


def profile_with_subreddits(*subreddits: str) -> CityProfile:
    """Baltimore's profile, reading the subreddits the recordings were made in."""
    return load_profile("baltimore").model_copy(
        update={"community": Community(subreddits=list(subreddits))}
    )


class Feed:
    """A connector wired to the in-process bus and a cursor store in `directory`."""

    def __init__(self, connector: LiveConnector, directory: Path) -> None:
        self.connector = connector
        self.topics = Topics.for_city("overheard", "baltimore")
        self.bus = MemoryBus(self.topics)
        self.bus.ensure_topics()
        self.producer = self.bus.producer()
        self.cursors = CursorStore(directory / "live.sqlite")
        self.summary = Summary()
        self.stop = threading.Event()

    def poll(self) -> None:
        poll_once(
            self.connector,
            self.producer,
            self.cursors,
            self.topics,
            self.summary,
            FAST_RETRY,
            self.stop,
        )

    def post_ids(self) -> list[str]:
        return [r.key.decode() for r in self.bus.records(self.topics.posts) if r.key]

    def posts(self) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.bus.records(self.topics.posts)]
