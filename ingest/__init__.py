"""Connectors that turn platform payloads into `Post`s.

The archive connector reads exported files (X API v2 and v1.1 responses, Reddit
listings and Pushshift dumps, CSV dumps), plain or compressed, and gives each post or
dead letter with the position to resume from; `CheckpointStore` keeps those positions.
"""

from .archive import (
    ArchiveReader,
    Delivery,
    Format,
    Position,
    detect_format,
    iter_archive,
)
from .checkpoint import CheckpointStore
from .csv_dump import MAPPINGS, CsvMapping

__all__ = [
    "MAPPINGS",
    "ArchiveReader",
    "CheckpointStore",
    "CsvMapping",
    "Delivery",
    "Format",
    "Position",
    "detect_format",
    "iter_archive",
]
