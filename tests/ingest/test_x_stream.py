"""The filtered stream on answers written from X's filtered-stream docs: rules from the
profile, a recent-search backfill before connecting, posts under their rule's cursor."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from overheard.ingest.live import CredentialsRejected
from overheard.ingest.x_search import XSearch, stream_name
from overheard.ingest.x_stream import Backoff, XStream, x_connector
from overheard.profile import load_profile
from overheard.settings import XSettings
from tests.ingest.replay import Feed, cassette

TOKEN = "x-test-stream-bearer-token"
TAG = "x:search:0123456789ab"  # the rule the streamed posts matched (stream_from_docs.yaml)


def connector() -> XStream:
    settings = XSettings(bearer_token=SecretStr(TOKEN), compliance_every_h=0, filtered_stream=True)
    made = x_connector(settings, load_profile("baltimore"), threading.Event(), keep_days=None)
    assert isinstance(made, XStream)
    made.search.queries = made.search.queries[:1]
    return made


def test_a_connection_is_backfilled_then_its_posts_move_their_rules_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Each rules call and connection makes its own session: record every request sent.
    sent: list[requests.PreparedRequest] = []
    real_send = requests.Session.send

    def send(
        self: requests.Session, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        sent.append(request)
        return real_send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    stream = connector()
    feed = Feed(stream, tmp_path)
    with caplog.at_level(logging.DEBUG), cassette("x/stream_from_docs.yaml"):
        feed.poll()
    assert "X filtered stream connected" in caplog.text
    assert TOKEN not in caplog.text
    query = stream.search.queries[0]
    # The backfill: recent search's two pages, under the query's own cursor.
    assert len(set(feed.post_ids())) == 14
    assert feed.post_ids()[12:] == ["x:1578520000000000001", "x:1578520000000000003"]
    assert feed.cursors.load(TAG) == {"since_id": "1578520000000000003"}
    assert feed.cursors.load(stream_name(query))["since_id"] == "1578516068309794817"
    # Rules: the stale overheard rule deleted, the foreign one left, the profile's added.
    posts = [json.loads(r.body) for r in sent if r.method == "POST" and r.body]
    assert posts == [
        {"delete": {"ids": ["1578519000000000010"]}},
        {"add": [{"value": query, "tag": stream_name(query)}]},
    ]
    # The posts are among those to check for deletion later.
    assert "x:1578520000000000003" in feed.cursors.sent_ids("x")


def test_a_refused_stream_stops_the_connector(tmp_path: Path) -> None:
    feed = Feed(connector(), tmp_path)
    with (
        cassette("x/stream_401_from_docs.yaml"),
        pytest.raises(CredentialsRejected, match="filtered stream"),
    ):
        feed.poll()


def test_reconnect_waits_follow_x_guide() -> None:
    backoff = Backoff()
    assert [backoff.after("network") for _ in range(3)] == [0.25, 0.5, 0.75]
    assert [backoff.after("network") for _ in range(100)][-1] == 16.0
    assert [backoff.after("http", 503) for _ in range(8)] == [5, 10, 20, 40, 80, 160, 320, 320]
    backoff.reset()
    assert [backoff.after("http", 429) for _ in range(3)] == [60, 120, 240]
    assert backoff.after("closed") == 0.0


def test_recent_search_stays_the_default() -> None:
    settings = XSettings(bearer_token=SecretStr(TOKEN))
    made = x_connector(settings, load_profile("baltimore"), threading.Event(), keep_days=None)
    assert isinstance(made, XSearch)
