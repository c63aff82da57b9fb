"""Which database errors may pass, which are about a row, and which are neither.

The runtime retries a batch that failed transiently and dead-letters an issue
that was rejected, so the line between the two decides whether a resident's
report waits or is set aside: only an error about the data itself rejects.
"""

from __future__ import annotations

import sqlite3
from enum import Enum

import psycopg
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError


class Failure(Enum):
    #: The database is unreachable or busy (down, refused, timed out, locked,
    #: deadlocked, out of resources): retry the whole batch later.
    TRANSIENT = "transient"
    #: The database refuses a row for good (a CHECK, a NOT NULL, a bad value):
    #: find the row and reject it; its batch-mates can be written.
    ROW = "row"
    #: Neither: a bug or a broken setup (no such table, read-only file). Raised
    #: as it is, because retrying cannot help and rejecting would blame the issue.
    FATAL = "fatal"


# PostgreSQL SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_TRANSIENT_CLASSES = frozenset(
    {
        "08",  # connection exception
        "40",  # transaction rollback: serialization failure, deadlock
        "53",  # insufficient resources: disk full, out of memory, too many connections
        "57",  # operator intervention: query canceled (statement_timeout), shutdown
        "58",  # system error: I/O error
    }
)
_PG_TRANSIENT_STATES = frozenset({"55P03"})  # lock_not_available (lock_timeout)
_PG_ROW_CLASSES = frozenset(
    {
        "22",  # data exception: value out of range, invalid text, ...
        "23",  # integrity constraint violation: CHECK, NOT NULL, ...
        "54",  # program limit exceeded: e.g. a value too big for an index row
    }
)

# SQLite primary result codes (https://sqlite.org/rescode.html).
_SQLITE_TRANSIENT = frozenset(
    {
        5,  # SQLITE_BUSY: another connection holds the lock past the busy timeout
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL: the disk is full
        15,  # SQLITE_PROTOCOL
    }
)
_SQLITE_READONLY_RECOVERY = 264  # another process is recovering the WAL: it passes
_SQLITE_ROW = frozenset(
    {
        18,  # SQLITE_TOOBIG
        19,  # SQLITE_CONSTRAINT
        20,  # SQLITE_MISMATCH
    }
)


def classify(exc: DBAPIError) -> Failure:
    """Decide from the driver's error code, then from the DB-API error class."""
    if exc.connection_invalidated:
        return Failure.TRANSIENT
    orig = exc.orig
    if isinstance(orig, psycopg.Error) and orig.sqlstate:
        state = orig.sqlstate
        if state[:2] in _PG_TRANSIENT_CLASSES or state in _PG_TRANSIENT_STATES:
            return Failure.TRANSIENT
        return Failure.ROW if state[:2] in _PG_ROW_CLASSES else Failure.FATAL
    if isinstance(orig, sqlite3.Error) and getattr(orig, "sqlite_errorcode", None) is not None:
        code = orig.sqlite_errorcode
        if code & 0xFF in _SQLITE_TRANSIENT or code == _SQLITE_READONLY_RECOVERY:
            return Failure.TRANSIENT
        return Failure.ROW if code & 0xFF in _SQLITE_ROW else Failure.FATAL
    # No code: psycopg's own errors, such as a refused connection (which also
    # covers a wrong password or a missing database: libpq reports those alike,
    # and retrying is the safe side) or a value it cannot send.
    if isinstance(exc, OperationalError):
        return Failure.TRANSIENT
    if isinstance(exc, DataError | IntegrityError):
        return Failure.ROW
    return Failure.FATAL


def describe(exc: DBAPIError) -> str:
    """The database's own words, without the SQL, the parameters or the failing row."""
    orig = exc.orig
    if isinstance(orig, psycopg.Error) and orig.diag.message_primary:
        return orig.diag.message_primary
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__
