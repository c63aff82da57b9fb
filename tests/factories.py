"""Small builders of realistic posts and issues for tests (Baltimore examples)."""

from __future__ import annotations

from datetime import UTC, datetime

from overheard.model import Platform, Post, Provenance, Thread

COLLECTED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def post(
    text: str,
    native_id: str = "t3_wp55z",
    *,
    platform: Platform = Platform.REDDIT,
    subreddit: str | None = "baltimore",
    mentions: tuple[str, ...] = (),
) -> Post:
    return Post(
        id=Post.make_id(platform, native_id),
        platform=platform,
        url=f"https://www.reddit.com/r/baltimore/comments/{native_id.removeprefix('t3_')}/",
        created_at=datetime(2012, 7, 19, 13, 5, tzinfo=UTC),
        text=text,
        mentions=mentions,
        thread=Thread(subreddit=subreddit if platform is Platform.REDDIT else None),
        provenance=Provenance(connector="test", connector_version="0", collected_at=COLLECTED),
    )
