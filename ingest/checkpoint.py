"""A durable record of how far each archive has been delivered.

The caller saves a position only after Kafka acknowledged every post before it, so a
restart resumes with nothing lost; at worst the posts after the last save are produced
again, and their ids make that harmless downstream.

The store is one JSON file, rewritten whole on each save: written to a temporary file
in the same directory, flushed and fsynced, then renamed over the old one (os.replace,
atomic on POSIX) and the directory fsynced, so a crash leaves the old file or the new
one, never a torn one. One process should write a given store file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .archive import Position
from .errors import CheckpointError

_VERSION = 1


class CheckpointStore:
    """Positions by archive (absolute path), kept in the JSON file at `path`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._positions = self._read()

    def load(self, archive: str | Path) -> Position | None:
        """Where to resume `archive`, or None when it was never saved."""
        return self._positions.get(str(Path(archive).resolve()))

    def save(self, archive: str | Path, position: Position) -> None:
        """Record where to resume `archive`, durably: once this returns, a crash keeps it."""
        key = str(Path(archive).resolve())
        if position.path != key:
            raise ValueError(f"the position is in {position.path}, not in {key}")
        self._positions[key] = position
        document = {
            "version": _VERSION,
            "archives": {path: p.to_json() for path, p in sorted(self._positions.items())},
        }
        self._replace(json.dumps(document, indent=2).encode("utf-8") + b"\n")

    def _read(self) -> dict[str, Position]:
        try:
            document = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read the checkpoint file {self.path}: {exc}") from exc
        try:
            if document["version"] != _VERSION:
                raise CheckpointError(
                    f"the checkpoint file {self.path} has version {document['version']!r}, "
                    f"this code reads {_VERSION}"
                )
            return {
                path: Position.from_json(path, entry)
                for path, entry in document["archives"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(
                f"the checkpoint file {self.path} is not a checkpoint store ({exc!r})"
            ) from exc

    def _replace(self, content: bytes) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        # The rename itself is durable only once the directory entry is on disk.
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
