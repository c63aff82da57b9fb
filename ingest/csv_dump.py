"""CSV dumps: rows read with their byte positions, and the column mapping that makes a Post.

Rows are read through `csv.reader` from the file's own lines, so a quoted field that
spans lines (a Reddit `selftext`) stays one row, and the byte offset after each row is
exact: the reader pulls only the lines of the row it returns.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import IO

from overheard.errors import ConfigError, MalformedMessage, MessageError
from overheard.model import Author, Platform, Post, Provenance, Thread

from . import reddit, x_common
from .errors import ArchiveFormatError, MissingField, MissingText, UnknownPlatform
from .normalise import parse_time

_BOM = "\ufeff"


@dataclass(frozen=True, kw_only=True)
class CsvMapping:
    """Which column of a CSV dump holds what; each value is a column name of the header.

    The platform is fixed (`platform`) or read per row (`platform_column`). The Post's text
    is `text`; with `title`, it is the title, then a blank line and `text` when that is
    not empty (nor, on Reddit, "[deleted]" or "[removed]").
    """

    id: str
    text: str
    #: Epoch seconds or ISO 8601. May be left out for X, whose ids hold their time.
    created: str | None = None
    platform: Platform | None = None
    platform_column: str | None = None
    title: str | None = None
    #: The post's own URL (a Reddit permalink may be site-relative).
    url: str | None = None
    #: A link the post shares (a Reddit link post's target).
    link: str | None = None
    author: str | None = None
    author_id: str | None = None
    author_location: str | None = None
    language: str | None = None
    #: Without it, a Reddit post's subreddit is read from its URL.
    subreddit: str | None = None
    reply_to: str | None = None
    conversation: str | None = None
    #: Put before a native id that lacks it, e.g. "t3_" for Reddit base-36 ids.
    id_prefix: str = ""
    delimiter: str = ","

    def __post_init__(self) -> None:
        if (self.platform is None) == (self.platform_column is None):
            raise ConfigError("a CSV mapping needs exactly one of platform and platform_column")
        if self.created is None and self.platform is not Platform.X:
            raise ConfigError("a CSV mapping needs a created column (only X ids hold a time)")

    def columns(self) -> dict[str, str]:
        """Role → column name, for every role this mapping uses."""
        return {
            f.name: value
            for f in fields(self)
            if f.name not in ("platform", "id_prefix", "delimiter")
            and isinstance(value := getattr(self, f.name), str)
        }


#: Mappings shipped with overheard, by name.
MAPPINGS: dict[str, CsvMapping] = {
    # The reddit-top-2.5-million dumps (umbrae/reddit-top-2.5-million): one subreddit's top
    # submissions, no author column, `permalink` a full URL, `name` the t3_ fullname.
    "reddit-csv": CsvMapping(
        platform=Platform.REDDIT,
        id="name",
        title="title",
        text="selftext",
        created="created_utc",
        url="permalink",
        link="url",
    ),
}


@dataclass(slots=True)
class Row:
    """One CSV record: its raw bytes, where it starts and where the next one starts."""

    raw: bytes
    line: int
    offset: int
    end: int
    end_line: int
    #: The fields, or none when the row could not be read (then `error` says why).
    cells: list[str]
    error: MessageError | None = None


class RowMaker:
    """Makes Posts from the rows of one file: a mapping bound to that file's header."""

    def __init__(self, mapping: CsvMapping, header: list[str]) -> None:
        self.mapping = mapping
        self.width = len(header)
        index = {name: i for i, name in enumerate(header)}
        missing = [c for c in mapping.columns().values() if c not in index]
        if missing:
            raise ArchiveFormatError(
                f"the CSV header has no column {', '.join(map(repr, missing))} "
                f"(it has: {', '.join(header)})"
            )
        self._at = {role: index[column] for role, column in mapping.columns().items()}

    def post(self, cells: list[str], provenance: Provenance) -> Post:
        if len(cells) != self.width:
            raise MalformedMessage(f"the row has {len(cells)} fields, the header {self.width}")
        mapping = self.mapping
        platform = mapping.platform or self._platform(self._cell(cells, "platform_column"))
        native = (self._cell(cells, "id") or "").strip()
        if not native:
            raise MissingField(f"the id column {mapping.id!r} is empty")
        if not native.startswith(mapping.id_prefix):
            native = mapping.id_prefix + native
        post_id = Post.make_id(platform, native)
        title = self._cell(cells, "title")
        body = self._cell(cells, "text")
        if platform is Platform.REDDIT:
            if not native.startswith(("t1_", "t3_")):
                raise MalformedMessage(f"{native!r} is not a Reddit fullname (set id_prefix)")
            text = reddit.submission_text(title, body)
        else:
            native = x_common.tweet_id(native)
            text = "\n\n".join(p for p in (title, body) if p) or None
        if text is None:
            raise MissingText(f"{post_id} has no text (column {mapping.text!r} is empty)")
        url = self._cell(cells, "url")
        handle = self._cell(cells, "author")
        author_id = self._cell(cells, "author_id")
        conversation = _post_id(platform, self._cell(cells, "conversation"))
        if platform is Platform.REDDIT:
            url = reddit.absolute(url)
            subreddit = self._cell(cells, "subreddit") or reddit.subreddit_in(url)
            author = reddit.author(handle, author_id)
            # As from the API: a submission is the conversation its comments belong to.
            if conversation is None and native.startswith("t3_"):
                conversation = post_id
        else:
            url = url or x_common.status_url(native, handle)
            subreddit = None
            author = Author(
                id=author_id, handle=handle, profile_location=self._cell(cells, "author_location")
            )
        created = self._cell(cells, "created")
        link = self._cell(cells, "link")
        return Post(
            id=post_id,
            platform=platform,
            url=url,
            created_at=(
                x_common.created_at(native, created)
                if platform is Platform.X
                else parse_time(created, f"{post_id} {mapping.created}")
            ),
            author=author,
            text=text,
            language=self._cell(cells, "language"),
            links=(link,) if link and link != url else (),
            thread=Thread(
                subreddit=subreddit,
                reply_to=_post_id(platform, self._cell(cells, "reply_to")),
                conversation=conversation,
                title=title,
            ),
            provenance=provenance,
        )

    def _cell(self, cells: list[str], role: str) -> str | None:
        """The cell for `role`, or None when the mapping has no such column or it is blank."""
        i = self._at.get(role)
        if i is None:
            return None
        value = cells[i]
        return value if value.strip() else None

    @staticmethod
    def _platform(name: str | None) -> Platform:
        try:
            return Platform((name or "").strip().lower())
        except ValueError:
            known = ", ".join(p.value for p in Platform)
            raise UnknownPlatform(
                f"platform {name!r} is not one overheard reads ({known})"
            ) from None


def _post_id(platform: Platform, value: str | None) -> str | None:
    if value is None or value.startswith(f"{platform.value}:"):
        return value
    return Post.make_id(platform, value)


def read_header(stream: IO[bytes], delimiter: str) -> tuple[list[str], int, int]:
    """The header's column names, and the byte offset and line number of the first row."""
    lines = _Lines(stream, offset=0, line=0)
    try:
        header = next(csv.reader(lines, delimiter=delimiter))
    except (StopIteration, csv.Error) as exc:
        raise ArchiveFormatError(f"the CSV file has no readable header ({exc})") from exc
    if lines.undecodable:
        raise ArchiveFormatError("the CSV header is not UTF-8")
    return [name.strip() for name in header], lines.offset, lines.line + 1


def read_rows(stream: IO[bytes], *, offset: int, line: int, delimiter: str) -> Iterator[Row]:
    """The rows from byte `offset` (the start of line `line`) on; `stream` must be there."""
    lines = _Lines(stream, offset=offset, line=line - 1)
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        start, first = lines.offset, lines.line + 1
        lines.begin_record()
        error: MessageError | None = None
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            cells, error = [], MalformedMessage(f"not a readable CSV row: {exc}")
        if lines.undecodable:
            cells, error = [], MalformedMessage("the row is not UTF-8")
        elif not cells and error is None:
            continue
        raw = b"".join(lines.raw).rstrip(b"\r\n")
        yield Row(raw, first, start, lines.offset, lines.line + 1, cells, error)


class _Lines:
    """The stream's lines, decoded for `csv.reader`, counting bytes and lines as they go.

    `csv.reader` asks for a line only when the row it is reading needs one, so after it
    returns a row, `offset` is exactly where the next row starts.
    """

    def __init__(self, stream: IO[bytes], *, offset: int, line: int) -> None:
        self.stream = stream
        self.offset = offset
        #: Lines consumed so far: the number of the last line read.
        self.line = line
        self.raw: list[bytes] = []
        self.undecodable = False

    def begin_record(self) -> None:
        self.raw = []
        self.undecodable = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self.stream.readline()
        if not raw:
            raise StopIteration
        at_start = self.offset == 0
        self.offset += len(raw)
        self.line += 1
        self.raw.append(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.undecodable = True
            text = raw.decode("utf-8", "replace")
        return text.removeprefix(_BOM) if at_start else text
