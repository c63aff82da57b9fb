"""CSV dumps: the r/baltimore top-1000 file through the built-in mapping, and custom ones."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from overheard.deadletter import DeadLetter
from overheard.errors import ConfigError
from overheard.ingest import MAPPINGS, CsvMapping, Position, iter_archive
from overheard.ingest.errors import ArchiveFormatError
from overheard.model import Platform, Post

Read = Callable[..., list[tuple[Post | DeadLetter, Position]]]


def ids(items: list[tuple[Post | DeadLetter, Position]]) -> list[str]:
    return [i.id if isinstance(i, Post) else f"dead letter at {i.origin}" for i, _ in items]


@pytest.fixture(scope="module")
def baltimore(baltimore_csv: Path, read: Read) -> list[tuple[Post | DeadLetter, Position]]:
    return read(baltimore_csv)


@pytest.fixture(scope="module")
def rows(baltimore_csv: Path) -> list[dict[str, str]]:
    with baltimore_csv.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_every_row_is_a_post_with_the_builtin_mapping(
    baltimore: list[tuple[Post | DeadLetter, Position]], rows: list[dict[str, str]]
) -> None:
    assert len(baltimore) == len(rows) == 1000
    assert ids(baltimore) == [f"reddit:{row['name']}" for row in rows]
    for (post, _), row in zip(baltimore, rows, strict=True):
        assert isinstance(post, Post)
        body = f"\n\n{row['selftext']}" if row["selftext"] else ""
        assert post.text == row["title"] + body
        assert post.thread.title == row["title"]
        assert post.thread.subreddit == "baltimore"
        assert post.url == row["permalink"]
        assert post.created_at == datetime.fromtimestamp(float(row["created_utc"]), UTC)
        assert post.links == (() if row["is_self"] == "True" else (row["url"],))
        assert post.author.handle is None


def test_a_complaint_in_the_sample_reads_whole(
    baltimore: list[tuple[Post | DeadLetter, Position]],
) -> None:
    post = baltimore[ids(baltimore).index("reddit:t3_wp55z")][0]
    assert isinstance(post, Post)
    assert post.text.startswith("Light Street Water Main Break - the morning after")
    assert post.provenance.connector == "archive"
    assert post.provenance.source is not None
    assert post.provenance.source.startswith("baltimore.csv:")


def test_positions_are_row_starts_and_lines_count_embedded_newlines(
    baltimore_csv: Path, baltimore: list[tuple[Post | DeadLetter, Position]]
) -> None:
    content = baltimore_csv.read_bytes()
    positions = [position for _, position in baltimore]
    for (post, _), next_start in zip(baltimore[1:], positions, strict=False):
        # Each position is where the next row starts, on the line its source names.
        assert isinstance(post, Post) and post.provenance.source is not None
        assert content[next_start.offset - 1 : next_start.offset] == b"\n"
        assert post.provenance.source == f"baltimore.csv:{next_start.line}"
        assert content[: next_start.offset].count(b"\n") + 1 == next_start.line
    assert positions[-1].offset == len(content)
    assert positions[-1].line == content.count(b"\n") + 1
    first = baltimore[0][0]
    assert isinstance(first, Post) and first.provenance.source == "baltimore.csv:2"


def test_a_caller_mapping_reads_the_same_file_its_own_way(
    baltimore_csv: Path, baltimore: list[tuple[Post | DeadLetter, Position]], read: Read
) -> None:
    titles_only = CsvMapping(
        platform=Platform.REDDIT, id="id", id_prefix="t3_", text="title", created="created_utc"
    )
    items = read(baltimore_csv, mapping=titles_only)
    assert ids(items) == ids(baltimore)
    first = items[0][0]
    assert isinstance(first, Post) and first.url is None and first.thread.subreddit is None
    assert "\n" not in first.text


def test_the_builtin_mapping_is_found_by_name_and_a_misfit_is_refused(
    baltimore_csv: Path, read: Read
) -> None:
    assert len(read(baltimore_csv, mapping="reddit-csv")) == 1000
    assert set(MAPPINGS) == {"reddit-csv"}
    with pytest.raises(ArchiveFormatError, match="no column 'body'"):
        iter_archive(
            baltimore_csv,
            mapping=CsvMapping(
                platform=Platform.REDDIT, id="name", text="body", created="created_utc"
            ),
        )
    with pytest.raises(ArchiveFormatError, match="no CSV mapping is named"):
        iter_archive(baltimore_csv, mapping="facebook-csv")


def test_a_mapping_must_say_the_platform_and_time() -> None:
    with pytest.raises(ConfigError, match="platform"):
        CsvMapping(id="id", text="text", created="created")
    with pytest.raises(ConfigError, match="created"):
        CsvMapping(platform=Platform.REDDIT, id="id", text="text")


MIXED = CsvMapping(
    platform_column="platform", id="id", text="text", created="created", author="author"
)


def test_bad_rows_are_dead_letters_with_their_first_line(
    tmp_path: Path, read: Read, collected_at: datetime
) -> None:
    lines = [
        b"platform,id,created,text,author",
        b'reddit,t3_wp55z,1342108800,"Light Street Water Main Break\n\nthe morning after",u1',
        b"mastodon,109,1342108800,Pothole on Eastern Ave,u2",
        b"reddit,t3_a1,next tuesday,Streetlight out on Fleet St,u3",
        b"reddit,t3_a2,1342108800,,u4",
        b"reddit,t3_a3,1342108800,one field too many,u5,extra",
        b"reddit,t3_a4,1342108800,caf\xe9 trash everywhere,u6",
        b"x,1578516068309794817,,Trash not picked up on Linwood,u7",
    ]
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = read(path, mapping=MIXED)
    summary = [
        (item.id, item.provenance.source) if isinstance(item, Post) else (item.error, item.origin)
        for item, _ in items
    ]
    assert summary == [
        ("reddit:t3_wp55z", "mixed.csv:2"),
        ("UnknownPlatform", "mixed.csv:5"),
        ("BadTimestamp", "mixed.csv:6"),
        ("MissingText", "mixed.csv:7"),
        ("MalformedMessage", "mixed.csv:8"),
        ("MalformedMessage", "mixed.csv:9"),
        ("x:1578516068309794817", "mixed.csv:10"),
    ]
    dead = [item for item, _ in items if isinstance(item, DeadLetter)]
    assert [d.original for d in dead] == lines[2:7]
    assert all(d.stage == "ingest" and d.at == collected_at for d in dead)
    assert "mastodon" in dead[0].reason and "next tuesday" in dead[1].reason
    tweet = items[-1][0]
    assert isinstance(tweet, Post)
    assert tweet.url == "https://x.com/u7/status/1578516068309794817"
    assert tweet.created_at.date() == datetime(2022, 10, 7).date()


def test_reading_the_sample_is_fast(baltimore_csv: Path) -> None:
    # CPU time of this process, best of 5: what the reader costs, not how busy the machine is.
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        count = sum(1 for _ in iter_archive(baltimore_csv))
        best = min(best, time.process_time() - started)
    assert count / best > 10_000, f"{count / best:.0f} rows/s"
