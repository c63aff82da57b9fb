"""Reading archives: formats, compression, dead letters, and resuming from any position."""

from __future__ import annotations

import bz2
import gzip
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overheard.deadletter import DeadLetter
from overheard.ingest import ArchiveReader, Position, archive, detect_format
from overheard.ingest.errors import PositionError
from overheard.model import Post

Read = Callable[..., list[tuple[Post | DeadLetter, Position]]]
Jsonl = Callable[[list[Any]], bytes]
Items = list[tuple[Post | DeadLetter, Position]]

COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda data: data,
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
}


def write(path: Path, content: bytes, compression: str = "") -> Path:
    target = path.with_name(path.name + compression)
    target.write_bytes(COMPRESS[compression](content))
    return target


@pytest.fixture(scope="module")
def real_lines(
    x_v2_responses: dict[str, Any], x_v1_responses: list[Any], reddit_responses: dict[str, Any]
) -> list[bytes]:
    """Real records, one JSON line each: whole responses (many posts each) and single posts."""
    records: list[Any] = list(x_v2_responses.values())
    records += x_v1_responses
    records += [
        body for key, body in reddit_responses.items() if key.startswith(("TestComment", "TestSub"))
    ][:4]
    records += x_v2_responses["test_client_get_users_tweets"]["data"]
    search = reddit_responses["TestSubreddit.test_search#1"]
    records += [child["data"] for child in search["data"]["children"]]
    return [json.dumps(record).encode() for record in records]


@pytest.fixture(scope="module")
def jsonl_archive(real_lines: list[bytes]) -> bytes:
    return b"\n".join(real_lines) + b"\n"


def test_the_format_is_told_from_the_name_then_the_first_line(tmp_path: Path) -> None:
    cases = {
        "posts.jsonl": b"not even json\n",
        "posts.ndjson.gz": gzip.compress(b"{}\n"),
        "rows.csv.bz2": bz2.compress(b'{"a": 1}\n'),
        "one-per-line.json": b'{"kind": "Listing"}\n{"kind": "Listing"}\n',
        "pretty.json": b'{\n  "data": []\n}\n',
        "export.txt": b'\n{"id": "1", "text": "hi"}\n',
        "export": b"created_utc,name,title\n",
        "pretty-no-suffix": b"[\n  {}\n]\n",
    }
    expected = {
        "posts.jsonl": "jsonl",
        "posts.ndjson.gz": "jsonl",
        "rows.csv.bz2": "csv",
        "one-per-line.json": "jsonl",
        "pretty.json": "json",
        "export.txt": "jsonl",
        "export": "csv",
        "pretty-no-suffix": "json",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        assert detect_format(tmp_path / name) == expected[name], name


@pytest.mark.parametrize("compression", [".gz", ".bz2"])
def test_compressed_archives_read_like_plain_ones(
    tmp_path: Path, jsonl_archive: bytes, baltimore_csv: Path, compression: str, read: Read
) -> None:
    for name, content in (("x.jsonl", jsonl_archive), ("r.csv", baltimore_csv.read_bytes())):
        plain = read(write(tmp_path / name, content))
        packed = read(write(tmp_path / name, content, compression))
        assert len(packed) == len(plain) > 100
        for (a, pa), (b, pb) in zip(plain, packed, strict=True):
            assert isinstance(a, Post) and isinstance(b, Post)
            assert a.model_dump(exclude={"provenance"}) == b.model_dump(exclude={"provenance"})
            assert (pa.offset, pa.line, pa.item) == (pb.offset, pb.line, pb.item)


@pytest.mark.parametrize("compression", ["", ".gz", ".bz2"])
@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_resuming_yields_exactly_the_rest(
    tmp_path: Path,
    jsonl_archive: bytes,
    baltimore_csv: Path,
    kind: str,
    compression: str,
    read: Read,
) -> None:
    content = jsonl_archive if kind == "jsonl" else baltimore_csv.read_bytes()
    path = write(tmp_path / f"archive.{kind}", content, compression)
    full = read(path)
    inside_a_record = next(k for k, (_, p) in enumerate(full) if p.item) if kind == "jsonl" else 1
    for k in sorted({0, inside_a_record, len(full) // 3, len(full) // 2, len(full) - 2}):
        resumed = read(path, start=full[k][1])
        assert resumed == full[k + 1 :], k
    assert read(path, start=full[-1][1]) == []


def test_resuming_does_not_read_the_records_before_the_position(
    tmp_path: Path, jsonl_archive: bytes, read: Read
) -> None:
    path = write(tmp_path / "archive.jsonl", jsonl_archive)
    full = read(path)
    position = full[len(full) // 2][1]
    # Ruin every byte before the position but the newlines: nothing there may be parsed.
    head = bytes(b if b == 0x0A else 0x21 for b in jsonl_archive[: position.offset])
    path.write_bytes(head + jsonl_archive[position.offset :])
    assert read(path, start=position) == full[len(full) // 2 + 1 :]


@pytest.fixture(scope="module")
def pool(real_lines: list[bytes]) -> list[bytes]:
    """Lines to build archives from: small real records, and malformed ones."""
    small = [line for line in real_lines if len(line) < 20_000]
    return small + [b"{not json", b"42", b"   ", b'{"id": "1", "content": "<p>hi</p>"}']


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_split_point_resumes_to_the_same_sequence(
    data: st.DataObject, pool: list[bytes], read: Read
) -> None:
    lines = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=8), label="lines")
    newline = data.draw(st.sampled_from([b"\n", b"\r\n"]), label="newline")
    compression = data.draw(st.sampled_from(list(COMPRESS)), label="compression")
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory) / "split.jsonl", newline.join(lines) + newline, compression)
        full = read(path)
        split = data.draw(st.integers(0, len(full)), label="split")
        start = full[split - 1][1] if split else None
        assert full[:split] + read(path, start=start) == full


def test_malformed_lines_are_dead_lettered_and_reading_goes_on(
    tmp_path: Path, real_lines: list[bytes], x_v2_responses: dict[str, Any], read: Read
) -> None:
    tweet = x_v2_responses["test_client_get_tweet"]["data"]
    lines = [
        b'{"data": [{"id": "1578516068309794817", "text": "first"}',
        json.dumps({"id": "109", "content": "<p>pothole</p>", "account": {"acct": "a"}}).encode(),
        json.dumps(dict(tweet, text="")).encode(),
        json.dumps(dict(tweet, created_at="when the lights went out")).encode(),
        json.dumps(
            {
                "subreddit": "baltimore",
                "link_id": "t3_wp55z",
                "parent_id": "t3_wp55z",
                "id": "c1",
                "body": "Still flooded",
                "created_utc": "soon",
            }
        ).encode(),
        b'{"id": "1", "text": "caf\xe9"}',
        b"[" * 100_000,
        b"42",
        real_lines[0],
    ]
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b"\n".join(lines[:2]) + b"\n\n" + b"\n".join(lines[2:]) + b"\n")
    items = read(path)
    dead = [(item.error, item.origin) for item, _ in items if isinstance(item, DeadLetter)]
    assert dead == [
        ("MalformedMessage", "broken.jsonl:1"),
        ("UnknownShape", "broken.jsonl:2"),
        ("MissingText", "broken.jsonl:4"),
        ("BadTimestamp", "broken.jsonl:5"),
        ("BadTimestamp", "broken.jsonl:6"),
        ("MalformedMessage", "broken.jsonl:7"),
        ("MalformedMessage", "broken.jsonl:8"),
        ("UnknownShape", "broken.jsonl:9"),
    ]
    letters = [item for item, _ in items if isinstance(item, DeadLetter)]
    assert [d.original for d in letters] == lines[:-1]
    assert "not valid JSON" in letters[0].reason and "not UTF-8" in letters[5].reason
    assert "'when the lights went out' is not a time" in letters[3].reason
    rest = [item for item, _ in items if isinstance(item, Post)]
    first_response = next(iter(x_v2_responses.values()))["data"]
    assert len(rest) == len(first_response)
    assert all(p.provenance.source == "broken.jsonl:10" for p in rest)


def test_a_json_document_that_is_not_json_is_one_dead_letter(tmp_path: Path, read: Read) -> None:
    path = tmp_path / "saved.json"
    path.write_bytes(b'\n{\n  "data": [\n    {"id": "1", "text": "cut off"\n')
    ((dead, position),) = read(path)
    assert isinstance(dead, DeadLetter) and dead.origin == "saved.json:2"
    assert dead.original == path.read_bytes() and "not valid JSON" in dead.reason
    assert position.offset == path.stat().st_size


def test_format_overrides_what_the_first_line_suggests(
    tmp_path: Path, real_lines: list[bytes], read: Read
) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(b"{\n" + b"\n".join(real_lines[:3]) + b"\n")
    assert [type(item).__name__ for item, _ in read(path)] == ["DeadLetter"]
    items = read(path, format="jsonl")
    assert isinstance(items[0][0], DeadLetter) and items[0][0].origin == "export.json:1"
    assert len(items) > 3 and all(isinstance(item, Post) for item, _ in items[1:])


def test_byte_order_marks_and_blank_lines_are_skipped(
    tmp_path: Path, real_lines: list[bytes], read: Read
) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + real_lines[1] + b"\n\n  \n" + real_lines[2])
    items = read(path)
    assert all(isinstance(item, Post) for item, _ in items)
    assert items[-1][1].offset == path.stat().st_size and items[-1][1].line == 5
    csv_path = tmp_path / "bom.csv"
    csv_path.write_bytes(
        b"\xef\xbb\xbfcreated_utc,name,title,selftext,permalink,url\n"
        b"1342108800,t3_wp55z,Water main break,,/r/baltimore/comments/wp55z/,\n"
    )
    ((post, _),) = read(csv_path)
    assert isinstance(post, Post) and post.thread.subreddit == "baltimore"
    assert post.url == "https://www.reddit.com/r/baltimore/comments/wp55z/"


def test_a_position_from_elsewhere_is_refused(
    tmp_path: Path, jsonl_archive: bytes, read: Read
) -> None:
    path = write(tmp_path / "a.jsonl", jsonl_archive)
    other = write(tmp_path / "b.jsonl", jsonl_archive)
    position = read(path)[5][1]
    with pytest.raises(PositionError, match="not in"):
        ArchiveReader(other, start=position)
    middle = Position(str(path.resolve()), position.offset + 3, position.line)
    with pytest.raises(PositionError, match="does not start a line"):
        read(path, start=middle)
    beyond = Position(str(path.resolve()), len(jsonl_archive) + 10, 999)
    with pytest.raises(PositionError, match="shorter"):
        read(path, start=beyond)
    document = tmp_path / "doc.json"
    document.write_bytes(b'{\n"data": []\n}\n')
    with pytest.raises(PositionError, match="start or its end"):
        read(document, start=Position(str(document.resolve()), 3, 2))


def test_a_position_round_trips_through_json(tmp_path: Path) -> None:
    position = Position(str(tmp_path / "a.jsonl"), 1234, 17, 3)
    assert Position.from_json(position.path, position.to_json()) == position
    with pytest.raises(ValueError, match="not a position"):
        Position("a", -1)


#: JSON values of every kind a record may hold (NaN aside: it equals nothing, itself included).
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON, ascii_only=st.booleans())
def test_a_line_is_decoded_as_the_json_module_decodes_it(value: Any, ascii_only: bool) -> None:
    """The archive reads JSON with pydantic-core's parser, and with `json` what it refuses
    (unpaired surrogate escapes among them): either way the value is `json`'s."""
    line = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        expected = json.loads(line)
    except UnicodeDecodeError:
        return  # a raw unpaired surrogate is not UTF-8: a dead letter either way
    decoded = archive._loads(line)
    assert decoded == expected
    assert json.dumps(decoded) == json.dumps(expected)  # same types: 1 stays 1, 1.0 stays 1.0


def test_records_only_the_json_module_reads_are_read_as_before(
    tmp_path: Path, real_lines: list[bytes], read: Read
) -> None:
    """A byte-order mark past the first line, nesting past pydantic-core's limit and an
    unpaired surrogate escape: `json` decides, as it always did."""
    comment = {
        "subreddit": "baltimore",
        "link_id": "t3_wp55z",
        "parent_id": "t3_wp55z",
        "id": "c1",
        "body": "Still flooded",
        "created_utc": 1342108800,
    }
    deep = dict(comment, id="c2", edited=json.loads("[" * 300 + "]" * 300))
    lines = [
        real_lines[1],
        b"\xef\xbb\xbf" + json.dumps(comment).encode(),
        json.dumps(deep).encode(),
        json.dumps(dict(comment, id="c3", body="pothole \ud800")).encode(),
    ]
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = [item for item, _ in read(path)]
    posts = [item for item in items if isinstance(item, Post)]
    assert [p.id for p in posts[-2:]] == ["reddit:t1_c1", "reddit:t1_c2"]
    (letter,) = [item for item in items if isinstance(item, DeadLetter)]
    assert letter.origin == "odd.jsonl:4" and "unicode string" in letter.reason
