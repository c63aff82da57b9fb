"""Real platform payloads for the archive connector's tests, decoded from shared/data.

The X v2 cassettes are VCR.py YAML with gzip-compressed bodies stored as `!!binary`;
PyYAML is not installed, so they are read with srsly's YAML loader (srsly is a
dependency of spaCy). The Reddit and X v1.1 cassettes are Betamax/VCR JSON.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import srsly

from overheard.deadletter import DeadLetter
from overheard.ingest import Position, iter_archive
from overheard.model import Post

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
COLLECTED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"the shared test data is not at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def baltimore_csv(data_dir: Path) -> Path:
    return data_dir / "social" / "reddit_top_2013" / "baltimore.csv"


@pytest.fixture(scope="session")
def x_v2_responses(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Each v2 cassette's response body, by cassette name (one request each)."""
    responses = {}
    for path in sorted((data_dir / "cassettes" / "x").glob("*.yaml")):
        (interaction,) = srsly.yaml_loads(path.read_text("utf-8"))["interactions"]
        body = interaction["response"]["body"]["string"]
        responses[path.stem] = json.loads(gzip.decompress(body))
    return responses


@pytest.fixture(scope="session")
def x_v1_responses(data_dir: Path) -> list[Any]:
    """The v1.1 search and user-timeline response bodies."""
    bodies = []
    for name in ("testsearchtweets.json", "testusertimeline.json"):
        cassette = json.loads((data_dir / "cassettes" / "x" / name).read_text("utf-8"))
        bodies += [json.loads(i["response"]["body"]["string"]) for i in cassette["interactions"]]
    return bodies


@pytest.fixture(scope="session")
def reddit_responses(data_dir: Path) -> dict[str, Any]:
    """Every Reddit API body but the OAuth token ones, by "cassette#index"."""
    bodies = {}
    for path in sorted((data_dir / "cassettes" / "reddit").glob("*.json")):
        interactions = json.loads(path.read_text("utf-8"))["interactions"]
        for index, interaction in enumerate(interactions):
            if interaction["request"]["uri"].endswith("/access_token"):
                continue
            bodies[f"{path.stem}#{index}"] = json.loads(interaction["response"]["body"]["string"])
    return bodies


@pytest.fixture(scope="session")
def collected_at() -> datetime:
    return COLLECTED_AT


@pytest.fixture(scope="session")
def read() -> Callable[..., list[tuple[Post | DeadLetter, Position]]]:
    """`list(iter_archive(...))` with a fixed collection time."""

    def read(path: Path, **options: Any) -> list[tuple[Post | DeadLetter, Position]]:
        return list(iter_archive(path, collected_at=COLLECTED_AT, **options))

    return read


@pytest.fixture(scope="session")
def jsonl() -> Callable[[list[Any]], bytes]:
    """Records as JSON Lines, the way an exporter writes them."""

    def jsonl(records: list[Any]) -> bytes:
        return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)

    return jsonl
