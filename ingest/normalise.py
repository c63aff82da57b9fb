"""What the platform normalisers share: reading untrusted JSON, times, and guarded building."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec

from pydantic import ValidationError

from overheard.errors import MalformedMessage, MessageError
from overheard.model import Post

from .errors import BadTimestamp

#: X API v1.1's `created_at`, e.g. "Wed Oct 10 20:19:24 +0000 2018".
_X_V1_TIME = "%a %b %d %H:%M:%S %z %Y"

#: What a normaliser may raise on a payload of the wrong structure (a list where an object
#: should be, a missing key). ValidationError is a ValueError and is caught before these.
_STRUCTURE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)

P = ParamSpec("P")


def attempt(make: Callable[P, Post], *args: P.args, **kwargs: P.kwargs) -> Post | MessageError:
    """Build one post, returning instead of raising whatever makes the payload unusable.

    Payloads are untrusted JSON: a field of an unexpected type surfaces deep in a
    normaliser as a TypeError or KeyError, and must cost one dead letter, not the file.
    """
    try:
        return make(*args, **kwargs)
    except MessageError as exc:
        return exc
    except ValidationError as exc:
        return MalformedMessage(describe(exc))
    except _STRUCTURE_ERRORS as exc:
        return MalformedMessage(f"unexpected structure ({type(exc).__name__}: {exc})")


def describe(exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
    )
    return f"not a valid {exc.title}: {problems}"


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (absent and null fields alike)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def string(data: dict[str, Any], key: str) -> str | None:
    """`data[key]` if it is a string with more than white space in it, else None."""
    value = data.get(key)
    return value if isinstance(value, str) and value.strip() else None


def unique(values: list[str | None]) -> tuple[str, ...]:
    """The non-empty values, in their first order, without repeats."""
    return tuple(dict.fromkeys(v for v in values if v))


def parse_time(value: Any, label: str) -> datetime:
    """Read a creation time, in UTC.

    Accepted: epoch seconds (a number, or a string of one: Reddit writes `1367292011.0`,
    Pushshift sometimes quotes it), ISO 8601 (X v2), or X v1.1's `Wed Oct 10 … 2018`.
    A time without an offset is read as UTC, the zone every platform's export uses.
    `label` names the field in the error, e.g. "reddit:t3_x created_utc".
    """
    if isinstance(value, bool) or value is None or value == "":
        raise BadTimestamp(f"{label} is missing")
    if isinstance(value, int | float):
        return _from_epoch(value, label)
    if not isinstance(value, str):
        raise BadTimestamp(f"{label} is a JSON {type(value).__name__}, not a time")
    text = value.strip()
    try:
        return _from_epoch(float(text), label)
    except ValueError:
        pass
    for parse in (datetime.fromisoformat, lambda t: datetime.strptime(t, _X_V1_TIME)):
        try:
            parsed = parse(text)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise BadTimestamp(f"{label} {value!r} is not a time (epoch seconds or ISO 8601)")


def _from_epoch(seconds: float, label: str) -> datetime:
    if not math.isfinite(seconds):
        raise BadTimestamp(f"{label} {seconds!r} is not a time")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise BadTimestamp(f"{label} {seconds!r} is out of range: {exc}") from exc
