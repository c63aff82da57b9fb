"""Reading an archive file into Posts, with a position to resume from after every one.

Formats (`format=`, told from the file when not given):

- ``jsonl``: one JSON record per line: an X v2 response or tweet, an X v1.1 search
  response or status, a Reddit listing, thing or comment page, a Pushshift object.
- ``json``: the whole file is one JSON document of those kinds (a saved API response).
- ``csv``: a CSV dump, read through a `CsvMapping`.

Plain, gzip and bz2 files are read alike (told by their first bytes, not their name).

Positions. Every post or dead letter comes with the `Position` to resume from once it
is safely delivered. Its `offset` is the byte offset of a record (a line, a CSV row);
for .gz and .bz2 files it counts bytes of the decompressed stream, so resuming
decompresses, without parsing, the part before it. A record can hold many posts (an X
response, a Reddit listing): after all but the last of them the position is the
record's own offset with `item` set to the number delivered, and resuming reads that
one record again and skips those; after the last it is the next record's offset. A
``json`` document is a single record, so its positions are its start (offset 0, with
`item`) or its end. A record without posts (an empty result page) yields nothing, so no
position passes it until a later post does; resuming before it reads it again, to no
effect.

Shares. `ArchiveReader.share` reads one of several parts of an archive, for a replay
over worker processes: every N-th chunk of records, the rest read past undecoded.
"""

from __future__ import annotations

import bz2
import gzip
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import IO, Any, Literal, cast, get_args

from pydantic_core import from_json

from overheard import __version__
from overheard.deadletter import DeadLetter
from overheard.errors import MalformedMessage, MessageError
from overheard.model import Post, Provenance

from .csv_dump import MAPPINGS, CsvMapping, RowMaker, read_header, read_rows
from .errors import ArchiveFormatError, PositionError
from .normalise import attempt
from .records import posts_in

Format = Literal["jsonl", "json", "csv"]

CONNECTOR = "archive"

_BOM = b"\xef\xbb\xbf"
_BY_SUFFIX: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonlines": "jsonl",
    ".csv": "csv",
}


@dataclass(frozen=True)
class Position:
    """Where to resume: the record at byte `offset` (on line `line`), minus its first `item`
    posts. `path` is the archive's absolute path."""

    path: str
    offset: int = 0
    line: int = 1
    item: int = 0

    def __post_init__(self) -> None:
        if self.offset < 0 or self.line < 1 or self.item < 0:
            raise ValueError(f"not a position: {self}")

    def to_json(self) -> dict[str, int]:
        return {"offset": self.offset, "line": self.line, "item": self.item}

    @classmethod
    def from_json(cls, path: str, data: Mapping[str, Any]) -> Position:
        return cls(path, int(data["offset"]), int(data["line"]), int(data.get("item", 0)))


#: What the reader yields: a post, or the dead letter of a record that cannot be one.
Delivery = tuple[Post | DeadLetter, Position]
#: Which records (numbered from 0 in the file, blank lines not counted) to decode.
Wanted = Callable[[int], bool]


def open_archive(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip or bz2."""
    with path.open("rb") as probe:
        magic = probe.read(3)
    if magic.startswith(b"\x1f\x8b"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    if magic == b"BZh":
        return bz2.open(path, "rb")
    return path.open("rb")


def detect_format(path: Path) -> Format:
    """From the name (`.jsonl`, `.ndjson`, `.csv`, also under `.gz`/`.bz2`), else from the
    first line: a whole JSON object or array → jsonl, the start of one → json, else csv."""
    name = path.name.lower().removesuffix(".gz").removesuffix(".bz2")
    suffix = PurePath(name).suffix
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    with open_archive(path) as stream:
        first = next((line for line in stream if line.strip()), b"")
    first = first.removeprefix(_BOM).strip()
    if _is_json_record(first):
        return "jsonl"
    if suffix == ".json" or first.startswith((b"{", b"[")):
        return "json"
    return "csv"


def _loads(raw: bytes) -> Any:
    """`raw` decoded as JSON, as `json.loads` decodes it, at a third of its cost.

    pydantic-core's parser reads most records; whatever it refuses goes to `json`,
    whose result or error stands. The two agree on every document both accept, and
    `json` accepts a few that pydantic-core does not (a byte-order mark, UTF-16,
    unpaired surrogate escapes, nesting past 200 levels), so the outcome is `json`'s.
    """
    try:
        return from_json(raw, cache_strings="keys")
    except ValueError:
        return json.loads(raw)


def _is_json_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict | list)
    except (ValueError, RecursionError):
        return False


def iter_archive(
    path: str | Path,
    *,
    start: Position | None = None,
    format: Format | None = None,
    mapping: CsvMapping | str | None = None,
    collected_at: datetime | None = None,
) -> Iterator[Delivery]:
    """Each post or dead letter of the archive, with the position to resume after it."""
    return iter(
        ArchiveReader(path, start=start, format=format, mapping=mapping, collected_at=collected_at)
    )


@dataclass(slots=True)
class _Record:
    raw: bytes
    line: int
    offset: int
    end: int
    end_line: int
    outcomes: list[Post | MessageError]
    #: The record's number, from 0 where the reading started.
    number: int = 0


class ArchiveReader:
    """An archive to read from `start` (its beginning by default).

    The format is told, and a CSV header matched to its mapping, when the reader is
    made, so a file of no known format fails here rather than midway; a `start` that
    does not fit the file raises `PositionError` when reading begins. `mapping` (CSV
    only) is a `CsvMapping`, the name of a built-in one, or None to pick the built-in
    one whose columns the header has. `collected_at` stamps every post's provenance
    (default: now), so a replay can be made deterministic.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        start: Position | None = None,
        format: Format | None = None,
        mapping: CsvMapping | str | None = None,
        collected_at: datetime | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        self._name = self.path.name
        if start is not None and Path(start.path) != self.path:
            raise PositionError(f"the start position is in {start.path}, not in {self.path}")
        self.start = start or Position(str(self.path))
        if collected_at is not None and collected_at.tzinfo is None:
            raise ValueError("collected_at must carry a time zone")
        self.collected_at = collected_at or datetime.now(UTC)
        if format is not None and format not in get_args(Format):
            raise ArchiveFormatError(f"format {format!r} is not one of {get_args(Format)}")
        self.format: Format = format or detect_format(self.path)
        if self.format != "csv" and mapping is not None:
            raise ArchiveFormatError(f"a column mapping applies to CSV, not to {self.format}")
        self._csv = self._bind(mapping) if self.format == "csv" else None

    def __iter__(self) -> Iterator[Delivery]:
        for record in self._records(None):
            yield from self._deliver(record)

    def share(
        self, size: int, shares: int, index: int
    ) -> Iterator[tuple[int, list[Post | DeadLetter], Position | None]]:
        """One of `shares` readers' part of the archive: cut into chunks of `size`
        records, chunk `n` is this reader's when `n % shares == index`. Yields each of
        its chunks that holds a record, numbered, with its posts and dead letters and
        the position after the last of them (None when it has none); the records of
        other chunks are read past without being decoded, so `shares` readers together
        decode the archive once. A compressed file cannot be seeked in, so each reader
        decompresses all of it; a ``json`` document is one record, in chunk 0."""
        if self.start != Position(str(self.path)):
            raise PositionError("a shared read starts at the beginning of the archive")
        if size < 1 or not 0 <= index < shares:
            raise ValueError(f"not a share: {index} of {shares}, chunks of {size}")
        number: int | None = None
        items: list[Post | DeadLetter] = []
        position: Position | None = None
        for record in self._records(lambda ordinal: ordinal // size % shares == index):
            chunk = record.number // size
            if chunk != number and number is not None:
                yield number, items, position
                items, position = [], None
            number = chunk
            if record.outcomes:
                # Only the chunk's end is resumed from: no position per item is made.
                items += (
                    self._dead_letter(outcome, record)
                    if isinstance(outcome, MessageError)
                    else outcome
                    for outcome in record.outcomes
                )
                position = Position(str(self.path), record.end, record.end_line)
        if number is not None:
            yield number, items, position

    def _records(self, wanted: Wanted | None) -> Iterator[_Record]:
        """The records `wanted` accepts (all when None), decoded."""
        with open_archive(self.path) as stream:
            if self._csv is not None:
                yield from self._csv_rows(stream, *self._csv, wanted)
            elif self.format == "jsonl":
                yield from self._json_lines(stream, wanted)
            else:
                yield from self._json_document(stream, wanted)

    def _deliver(self, record: _Record) -> Iterator[Delivery]:
        skip = self.start.item if record.offset == self.start.offset else 0
        last = len(record.outcomes) - 1
        for index in range(skip, last + 1):
            if index < last:
                position = Position(str(self.path), record.offset, record.line, index + 1)
            else:
                position = Position(str(self.path), record.end, record.end_line)
            outcome = record.outcomes[index]
            if isinstance(outcome, MessageError):
                yield self._dead_letter(outcome, record), position
            else:
                yield outcome, position

    def _dead_letter(self, error: MessageError, record: _Record) -> DeadLetter:
        return DeadLetter(
            stage="ingest",
            reason=str(error),
            error=type(error).__name__,
            origin=f"{self._name}:{record.line}",
            original=record.raw,
            at=self.collected_at,
        )

    def _provenance(self, line: int) -> Provenance:
        return Provenance(
            connector=CONNECTOR,
            connector_version=__version__,
            collected_at=self.collected_at,
            source=f"{self._name}:{line}",
        )

    def _json_lines(self, stream: IO[bytes], wanted: Wanted | None) -> Iterator[_Record]:
        offset, line = self.start.offset, self.start.line
        self._seek(stream, offset)
        number = 0
        for raw in stream:
            end = offset + len(raw)
            if raw.strip():
                if wanted is None or wanted(number):
                    record = raw.removeprefix(_BOM) if offset == 0 else raw
                    outcomes = self._decode(record, line, "line")
                    stripped = raw.rstrip(b"\r\n")
                    yield _Record(stripped, line, offset, end, line + 1, outcomes, number)
                number += 1
            offset, line = end, line + 1

    def _json_document(self, stream: IO[bytes], wanted: Wanted | None) -> Iterator[_Record]:
        if wanted is not None and not wanted(0):
            return
        content = stream.read()
        if 0 < self.start.offset == len(content):
            return
        if self.start.offset != 0:
            raise PositionError(
                f"{self.path.name} is one JSON document ({len(content)} bytes): it resumes "
                f"at its start or its end, not at byte {self.start.offset}"
            )
        body = content.removeprefix(_BOM)
        if not body.strip():
            return
        line = body[: len(body) - len(body.lstrip())].count(b"\n") + 1
        outcomes = self._decode(body, line, "file")
        yield _Record(content, line, 0, len(content), content.count(b"\n") + 1, outcomes)

    def _decode(self, raw: bytes, line: int, what: str) -> list[Post | MessageError]:
        try:
            return list(posts_in(_loads(raw), self._provenance(line)))
        except UnicodeDecodeError as exc:
            return [MalformedMessage(f"the {what} is not UTF-8 ({exc.reason} at byte {exc.start})")]
        except json.JSONDecodeError as exc:
            return [MalformedMessage(f"the {what} is not valid JSON ({exc})")]
        except RecursionError:
            return [MalformedMessage(f"the {what} is JSON nested too deeply to read")]

    def _bind(self, mapping: CsvMapping | str | None) -> tuple[RowMaker, int, int]:
        """The mapping bound to the header, and the offset and line of the first row."""
        if isinstance(mapping, str):
            if mapping not in MAPPINGS:
                known = ", ".join(MAPPINGS)
                raise ArchiveFormatError(f"no CSV mapping is named {mapping!r} ({known})")
            mapping = MAPPINGS[mapping]
        candidates = [mapping] if mapping is not None else list(MAPPINGS.values())
        with open_archive(self.path) as stream:
            header, offset, line = read_header(stream, candidates[0].delimiter)
        for candidate in candidates:
            try:
                return RowMaker(candidate, header), offset, line
            except ArchiveFormatError:
                if mapping is not None:
                    raise
        raise ArchiveFormatError(
            f"no built-in CSV mapping ({', '.join(MAPPINGS)}) fits the columns of "
            f"{self.path.name} ({', '.join(header)}); pass a CsvMapping"
        )

    def _csv_rows(
        self,
        stream: IO[bytes],
        maker: RowMaker,
        first_offset: int,
        first_line: int,
        wanted: Wanted | None,
    ) -> Iterator[_Record]:
        if self.start.offset == 0:
            offset, line = first_offset, first_line
        elif self.start.offset < first_offset:
            raise PositionError(f"byte {self.start.offset} is inside the CSV header")
        else:
            offset, line = self.start.offset, self.start.line
        self._seek(stream, offset)
        rows = read_rows(stream, offset=offset, line=line, delimiter=maker.mapping.delimiter)
        for number, row in enumerate(rows):
            if wanted is not None and not wanted(number):
                continue
            outcome = row.error or attempt(maker.post, row.cells, self._provenance(row.line))
            yield _Record(row.raw, row.line, row.offset, row.end, row.end_line, [outcome], number)

    def _seek(self, stream: IO[bytes], offset: int) -> None:
        """Move to `offset`, which must start a line (or be the end of the file)."""
        if offset == 0:
            return
        stream.seek(offset - 1)
        before = stream.read(1)
        if before == b"\n" or (before and not stream.read(1)):
            return
        raise PositionError(
            f"byte {offset} does not start a line of {self.path.name}: "
            "the file is shorter, or has changed, since the position was taken"
        )
