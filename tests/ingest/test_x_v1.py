"""X API v1.1 statuses (search and user timelines, from tweepy's cassettes) as Posts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overheard.deadletter import DeadLetter
from overheard.ingest import Position
from overheard.model import Post

Read = Callable[..., list[tuple[Post | DeadLetter, Position]]]
Jsonl = Callable[[list[Any]], bytes]


def statuses(responses: list[Any]) -> list[dict[str, Any]]:
    return [s for r in responses for s in (r["statuses"] if isinstance(r, dict) else r)]


def test_search_responses_and_timelines_give_one_post_per_status(
    tmp_path: Path, x_v1_responses: list[Any], read: Read, jsonl: Jsonl
) -> None:
    path = tmp_path / "v1.jsonl"
    path.write_bytes(jsonl(x_v1_responses))
    posts = [item for item, _ in read(path) if isinstance(item, Post)]
    expected = statuses(x_v1_responses)
    assert len(posts) == len(expected) == 39
    assert [post.id for post in posts] == [f"x:{s['id_str']}" for s in expected]


def test_a_status_keeps_author_place_replies_and_entities(
    tmp_path: Path, x_v1_responses: list[Any], read: Read, jsonl: Jsonl
) -> None:
    path = tmp_path / "v1.jsonl"
    path.write_bytes(jsonl(x_v1_responses))
    posts = {item.id: item for item, _ in read(path) if isinstance(item, Post)}
    raw = {f"x:{s['id_str']}": s for s in statuses(x_v1_responses)}
    placed = [p for p in posts.values() if p.geo is not None and p.geo.place is not None]
    assert len(placed) == 14
    for post in placed:
        assert post.geo is not None and post.geo.place is not None
        assert post.geo.place.bbox is not None
        ring = raw[post.id]["place"]["bounding_box"]["coordinates"][0]
        west, south, east, north = post.geo.place.bbox
        assert (west, east) == (min(c[0] for c in ring), max(c[0] for c in ring))
        assert (south, north) == (min(c[1] for c in ring), max(c[1] for c in ring))
    replies = [p for p in posts.values() if p.thread.reply_to]
    assert len(replies) == 20
    for post in replies:
        assert post.thread.reply_to == f"x:{raw[post.id]['in_reply_to_status_id_str']}"
        assert post.thread.reply_to_author == raw[post.id]["in_reply_to_screen_name"]
    for post_id, status in raw.items():
        post = posts[post_id]
        assert post.author.handle == status["user"]["screen_name"]
        assert (
            post.url == f"https://x.com/{status['user']['screen_name']}/status/{status['id_str']}"
        )
        mentioned = [m["screen_name"] for m in status["entities"]["user_mentions"]]
        assert post.mentions == tuple(dict.fromkeys(mentioned))
    first = posts["x:" + statuses(x_v1_responses)[0]["id_str"]]
    assert first.created_at == datetime(2019, 7, 12, 23, 40, 37, tzinfo=UTC)
    assert first.author.profile_location == "Leeds UK"
