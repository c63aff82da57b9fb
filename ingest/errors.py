"""Why a record, or a whole archive, cannot be read.

Record-level errors subclass `MessageError`: the archive reader turns each into a
dead letter and goes on with the next record. Archive-level errors are mistakes the
caller must fix (a file of no known format, a position that is not in the file, a
damaged checkpoint file) and are raised before anything is read.
"""

from __future__ import annotations

from overheard.errors import MessageError, OverheardError


class UnknownShape(MessageError):
    """A JSON record that is not a post, comment, listing or response this reader knows."""


class UnknownPlatform(MessageError):
    """A row that names a platform overheard has no normaliser for."""


class MissingField(MessageError):
    """A post without a field every post needs, such as its id."""


class MissingText(MessageError):
    """A post with no text: empty, deleted or removed."""


class BadTimestamp(MessageError):
    """A creation time that is missing or cannot be read as a time."""


class ArchiveFormatError(OverheardError):
    """The file is of no format this reader knows, or its CSV columns fit no mapping."""


class PositionError(OverheardError):
    """A start position that does not belong to this archive (another file, or a changed one)."""


class CheckpointError(OverheardError):
    """The checkpoint file exists but cannot be read; it is never silently reset."""
