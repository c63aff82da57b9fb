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
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

from overheard.errors import TransientError
from overheard.model import Issue
from overheard.sinks.base import WRITTEN, BaseSink, Outcome

if TYPE_CHECKING:
    from overheard.settings import Settings

log = logging.getLogger(__name__)

#: The files this sink owns in its directory.
FILE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}\.jsonl$")
LOCK_NAME = ".lock"

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


def _fsync_directory(directory: Path) -> None:
    """Make a new file's name durable, not only its contents."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
