"""The jsonl sink: issues as JSON lines, one file per day (UTC), for analysts.

Layout: `<directory>/<YYYY-MM-DD>.jsonl`, one `Issue` JSON object per line,
append-only. The day is the UTC date the resident *posted* (`issue.post.created_at`),
not the date the sink wrote the line: an analyst asking "what did people report on
the 3rd" opens one file, a replayed archive lands in the days it covers, and a
redelivered issue always maps to the same file. The price: a past day's file can
still grow when an old post arrives late or an archive is replayed, so a file is
never "closed" at midnight.

Nothing twice: `open` reads the ids of every line already in the directory, and
`write` skips an issue whose id is there (it counts as written). A line is only
acknowledged (`Written`) after the file was flushed and `fsync`ed, so a crash can
leave at most one torn line, at the end of a file, that nobody was told about:
`open` truncates it back to the last newline (appending after it would glue the
next issue onto the fragment and spoil a good line), and the runtime redelivers
that issue. A full line that is not JSON (not written by this sink) is logged and
skipped, never fatal.

Only one sink may write a directory at a time (it alone knows which ids are
there): `open` takes an exclusive lock on `<directory>/.lock`, and raises
`TransientError` while another process holds it.

Forget and retention rewrite a day file whole: the new content goes to a temporary
file in the same directory, is `fsync`ed, then renamed over the old one, so a reader
or a crash sees the old file or the new one. `forget` removes the post's lines and
appends their issue ids to `<directory>/.forgotten`, which `open` reads with the
ids present, so a redelivered issue is never written back. Retention
(`drop_text_before`) keeps each line but drops the post's text and author from it
(the line is then no longer a valid `Issue`: it has no text).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

from overheard.errors import TransientError
from overheard.model import Issue
from overheard.sinks.base import WRITTEN, BaseSink, Outcome, without_text

if TYPE_CHECKING:
    from overheard.settings import Settings

log = logging.getLogger(__name__)

#: The files this sink owns in its directory.
FILE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}\.jsonl$")
LOCK_NAME = ".lock"
#: Issue ids of forgotten posts, one a line: never written again.
FORGOTTEN_NAME = ".forgotten"

#: Failures of the disk that may pass (space freed, a device or NFS server back).
#: Anything else (EACCES, EPERM, EROFS, ENOTDIR, ...) is a broken setup: raised as it
#: is, because retrying cannot help and rejecting would blame the issue.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EAGAIN,
        errno.EINTR,
        errno.ENOMEM,
        errno.EBUSY,
        errno.ESTALE,
        errno.ETIMEDOUT,
    }
)


def from_settings(settings: Settings) -> JsonlSink:
    """The factory the `overheard.sinks` entry point names: the sink for `[jsonl]`."""
    return JsonlSink(settings.jsonl.directory)


def file_name(day: date) -> str:
    return f"{day.isoformat()}.jsonl"


class JsonlSink(BaseSink):
    """Appends each issue once, as a JSON line, to the file of the day it was posted."""

    name = "jsonl"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._seen: set[uuid.UUID] = set()
        self._lock: IO[bytes] | None = None
        #: Serialises `write` with `forget` and retention, which may run in another thread.
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.directory)!r})"

    def open(self) -> None:
        """Create the directory, take its lock, repair torn tails and learn the ids present."""
        self._release_lock()  # opened twice: start over
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._take_lock()
            seen: set[uuid.UUID] = set()
            for path in self.files():
                _repair_tail(path)
                seen.update(_ids_in(path))
            seen.update(_forgotten_ids(self.directory / FORGOTTEN_NAME))
        except OSError as exc:
            self._release_lock()
            _raise(exc, f"cannot prepare {self.directory}")
        except BaseException:
            self._release_lock()
            raise
        self._seen = seen
        log.info("jsonl sink ready: %s (%d issues already there)", self.directory, len(seen))

    def close(self) -> None:
        self._release_lock()
        self._seen = set()

    def files(self) -> list[Path]:
        """This sink's day files in the directory, oldest day first."""
        return sorted(p for p in self.directory.iterdir() if FILE_PATTERN.match(p.name))

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        with self._mutex:
            return self._write(issues)

    def forget(self, post_id: str | None = None, author_key: str | None = None) -> int:
        """Remove the lines of the post `post_id`, or of every post of the pseudonym
        `author_key`, and remember their ids; returns the lines removed."""
        if post_id is None and author_key is None:
            raise ValueError("forget needs a post id or an author key")

        def matches(issue: dict[str, object]) -> bool:
            post = issue.get("post")
            if not isinstance(post, dict):
                return False
            author = post.get("author")
            key = author.get("key") if isinstance(author, dict) else None
            return (post_id is not None and post.get("id") == post_id) or (
                author_key is not None and key == author_key
            )

        removed: list[str] = []

        def drop(issue: dict[str, object]) -> dict[str, object] | None:
            if matches(issue):
                removed.append(str(issue["id"]))
                return None
            return issue

        with self._mutex:
            self._require_open()
            for path in self.files():
                count = len(removed)
                self._rewrite(path, drop)
                if len(removed) > count:
                    # Remembered before the next file, so a crash never forgets the ids.
                    self._remember(removed[count:])
        return len(removed)

    def drop_text_before(self, cutoff: datetime) -> int:
        """Retention: drop the post's text and author from every line of a post made before
        `cutoff` that still has them (only day files up to `cutoff`'s day are read);
        returns the lines changed."""
        changed = 0

        def strip(issue: dict[str, object]) -> dict[str, object]:
            nonlocal changed
            post = issue.get("post")
            if not isinstance(post, dict) or not ("text" in post or post.get("author")):
                return issue
            try:
                made = datetime.fromisoformat(str(post.get("created_at")))
            except ValueError:
                return issue  # not a post this sink wrote
            if made >= cutoff:
                return issue
            changed += 1
            return without_text(issue)

        with self._mutex:
            self._require_open()
            for path in self.files():
                if date.fromisoformat(path.name.removesuffix(".jsonl")) <= cutoff.date():
                    self._rewrite(path, strip)
        return changed

    def _require_open(self) -> None:
        if self._lock is None:
            raise RuntimeError("JsonlSink used before open()")

    def _rewrite(
        self, path: Path, change: Callable[[dict[str, object]], dict[str, object] | None]
    ) -> None:
        """Replace `path` by its lines passed through `change` (None drops a line), atomically;
        leave it alone when nothing changed."""
        lines: list[bytes] = []
        changed = False
        try:
            with open(path, "rb") as file:
                for line in file:
                    try:
                        issue = json.loads(line)
                    except ValueError:
                        lines.append(line)  # not ours (logged by open): kept as it is
                        continue
                    after = change(issue) if isinstance(issue, dict) else issue
                    if after is not issue:
                        changed = True
                    if after is not None:
                        lines.append(line if after is issue else _line(after))
            if changed:
                _replace_atomically(path, b"".join(lines))
        except OSError as exc:
            _raise(exc, f"cannot rewrite {path}")

    def _remember(self, issue_ids: Sequence[str]) -> None:
        try:
            self._append(
                self.directory / FORGOTTEN_NAME, "".join(f"{i}\n" for i in issue_ids).encode()
            )
        except OSError as exc:
            _raise(exc, f"cannot write to {self.directory / FORGOTTEN_NAME}")
        self._seen.update(uuid.UUID(i) for i in issue_ids)

    def _write(self, issues: Sequence[Issue]) -> list[Outcome]:
        if self._lock is None:
            raise RuntimeError("JsonlSink.write before open()")
        by_file: dict[str, list[Issue]] = {}
        fresh: set[uuid.UUID] = set()
        for issue in issues:
            if issue.id in self._seen or issue.id in fresh:
                continue  # already there (or earlier in this batch): written, not again
            fresh.add(issue.id)
            by_file.setdefault(file_name(issue.post.created_at.date()), []).append(issue)
        for name, day_issues in by_file.items():
            data = b"".join(issue.model_dump_json().encode("utf-8") + b"\n" for issue in day_issues)
            try:
                self._append(self.directory / name, data)
            except OSError as exc:
                _raise(exc, f"cannot write to {self.directory / name}")
            self._seen.update(issue.id for issue in day_issues)
        return [WRITTEN] * len(issues)

    def _append(self, path: Path, data: bytes) -> None:
        """Append `data` durably, or leave the file as it was."""
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                # Take back what reached the file, so a retry appends after a whole line.
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    log.warning("could not truncate %s back to %d bytes", path, size)
                raise
        finally:
            os.close(fd)
        if created:
            _fsync_directory(self.directory)

    def _take_lock(self) -> None:
        lock = open(self.directory / LOCK_NAME, "ab")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise TransientError(
                f"another jsonl sink is writing to {self.directory} (it holds {LOCK_NAME})"
            ) from None
        except BaseException:
            lock.close()
            raise
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None


def _raise(exc: OSError, doing: str) -> NoReturn:
    """Raise `TransientError` for a disk failure that may pass, else `exc` itself."""
    if exc.errno in TRANSIENT_ERRNOS:
        raise TransientError(f"{doing}: {os.strerror(exc.errno or 0)}") from exc
    raise exc


def _repair_tail(path: Path) -> None:
    """Truncate a torn last line (no newline at the end) back to the last newline."""
    with open(path, "r+b") as file:
        end = file.seek(0, os.SEEK_END)
        if end == 0:
            return
        file.seek(end - 1)
        if file.read(1) == b"\n":
            return
        # Walk back in blocks to the last newline.
        position = end
        keep = 0
        while position > 0:
            start = max(0, position - 65536)
            file.seek(start)
            block = file.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        log.warning(
            "%s ends with a torn line (%d bytes, from a crash mid-write); truncating it",
            path,
            end - keep,
        )
        file.truncate(keep)
        file.flush()
        os.fsync(file.fileno())


def _ids_in(path: Path) -> Iterator[uuid.UUID]:
    """The issue ids of a day file's lines, read one line at a time."""
    with open(path, "rb") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield uuid.UUID(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d is not an issue written by this sink; skipped", path, number)


def _line(issue: dict[str, object]) -> bytes:
    return json.dumps(issue, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, rename it over `path`."""
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    _fsync_directory(path.parent)


def _forgotten_ids(path: Path) -> Iterator[uuid.UUID]:
    if not path.exists():
        return
    with open(path, encoding="ascii") as file:
        for line in file:
            with contextlib.suppress(ValueError):
                yield uuid.UUID(line.strip())


def _fsync_directory(directory: Path) -> None:
    """Make a new file's name durable, not only its contents."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
