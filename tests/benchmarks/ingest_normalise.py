"""Normalising the live connectors' payloads into Posts, against plain `json.loads` of the
same bytes, in one run (issue 6's target: at least 20,000 posts/s per platform).

The payloads are the committed cassettes' bodies (tests/ingest/cassettes): X API v2
recent-search pages (one recorded, one with every expansion, from X's docs) and Reddit
listings recorded by praw (new submissions, the comment stream). Each is read over and
over until a run holds about CORPUS_POSTS posts. These are the live connectors' own
paths: tweepy hands over the search answer as JSON, and the Reddit connector reads
listings as JSON (not as praw's objects, which alone build about 8,000 comments/s).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from overheard.ingest.reddit import posts_from_listing
from overheard.ingest.x_v2 import posts_from_response
from overheard.model import Post, Provenance
from tests.benchmarks.timing import best_rate

CASSETTES = Path(__file__).resolve().parents[1] / "ingest" / "cassettes"
CORPUS_POSTS = 20_000
TARGET = 20_000
PROVENANCE = Provenance(
    connector="bench", connector_version="0", collected_at=datetime(2026, 1, 1, tzinfo=UTC)
)


def bodies(name: str, wanted: str) -> list[bytes]:
    """The answers' bodies in a cassette whose request path holds `wanted`."""
    path = CASSETTES / name
    if path.suffix == ".json":
        interactions = json.loads(path.read_text())["interactions"]
    else:
        interactions = yaml.safe_load(path.read_text())["interactions"]
    return [
        i["response"]["body"]["string"].encode()
        for i in interactions
        if wanted in i["request"]["uri"] and i["response"]["status"]["code"] == 200
    ]


def corpus(payloads: list[bytes], count: Callable[[Any], int]) -> tuple[list[bytes], int]:
    """The payloads repeated until they hold about CORPUS_POSTS posts; and how many."""
    per_round = sum(count(json.loads(p)) for p in payloads)
    rounds = max(1, round(CORPUS_POSTS / per_round))
    return payloads * rounds, per_round * rounds


def measure(
    name: str, payloads: list[bytes], posts: int, normalise: Callable[[bytes], list[Post]]
) -> dict[str, Any]:
    made = sum(len(normalise(p)) for p in payloads)
    assert made == posts, f"{name}: {made} posts, expected {posts}"
    loads = best_rate(lambda: [json.loads(p) for p in payloads], posts)
    rate = best_rate(lambda: [normalise(p) for p in payloads], posts)
    return {
        "posts": posts,
        "json_loads_posts_per_s": round(loads),
        "normalise_posts_per_s": round(rate),
        "normalise_vs_json_loads": round(rate / loads, 3),
        "meets_target": rate >= TARGET,
    }


def _x(raw: bytes) -> list[Post]:
    return [p for p in posts_from_response(json.loads(raw), PROVENANCE) if isinstance(p, Post)]


def _reddit(raw: bytes) -> list[Post]:
    return [p for p in posts_from_listing(json.loads(raw), PROVENANCE) if isinstance(p, Post)]


def _listing_size(listing: Any) -> int:
    return len(listing["data"]["children"])


def run(console: Console) -> dict[str, Any]:
    x_pages, x_posts = corpus(
        bodies("x/search_recent_paged_from_docs.yaml", "search/recent"),
        lambda page: len(page["data"]),
    )
    reddit_pages, reddit_posts = corpus(
        bodies("reddit/new_askreddit.json", "/new")
        + bodies("reddit/stream_comments.json", "/comments"),
        _listing_size,
    )
    results = {
        "x_v2_search": measure("x", x_pages, x_posts, _x),
        "reddit_listing": measure("reddit", reddit_pages, reddit_posts, _reddit),
    }
    table = Table(title=f"normalisation vs json.loads of the same payloads (target {TARGET:,}/s)")
    for column in ("payloads", "posts", "json.loads posts/s", "normalise posts/s", "ratio"):
        table.add_column(column, justify="right")
    for name, figures in results.items():
        table.add_row(
            name,
            f"{figures['posts']:,}",
            f"{figures['json_loads_posts_per_s']:,}",
            f"{figures['normalise_posts_per_s']:,}",
            f"{figures['normalise_vs_json_loads']:.3f}",
        )
    console.print(table)
    return {"source": "tests/ingest/cassettes", "target_posts_per_s": TARGET, **results}
