"""What X API v1.1 and v2 payloads share: ids, the time inside an id, URLs, languages, points."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from overheard.errors import MalformedMessage
from overheard.model import GeoPoint

from .errors import BadTimestamp, MissingField
from .normalise import as_dict, as_list, parse_time

#: Snowflake ids hold milliseconds since this instant (2010-11-04T01:42:54.657Z) in bits 22+.
_SNOWFLAKE_EPOCH_MS = 1288834974657
#: Ids below this were issued sequentially, before Snowflake, and hold no time. Sequential ids
#: ended near 3e10; this bound (one day into the Snowflake epoch, about 3.6e14) clears them.
_FIRST_SNOWFLAKE = (24 * 3600 * 1000) << 22

#: Language codes X gives a post that has no language: undetermined, no linguistic content,
#: and "only mentions / cashtags / hashtags / media links / very short text".
_NO_LANGUAGE = frozenset({"und", "zxx", "qam", "qct", "qht", "qme", "qst"})


def tweet_id(value: Any) -> str:
    """The tweet's id as a string of digits (v2 sends strings, v1.1's `id` is a number)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise MissingField("an X tweet without an id")
    if not value.isdigit():
        raise MalformedMessage(f"X tweet id {value!r} is not a number")
    return value


def created_at(native_id: str, value: Any) -> datetime:
    """The tweet's `created_at`; without one, the time its Snowflake id was issued.

    v2 returns `created_at` only when `tweet.fields` asks for it, so archives made with the
    default fields have none; the id holds the same instant to the millisecond.
    """
    if value is not None:
        return parse_time(value, f"x:{native_id} created_at")
    number = int(native_id)
    if number < _FIRST_SNOWFLAKE:
        raise BadTimestamp(
            f"x:{native_id} has no created_at, and its id predates Snowflake ids, "
            "so it holds no time"
        )
    return datetime.fromtimestamp(((number >> 22) + _SNOWFLAKE_EPOCH_MS) / 1000, UTC)


def status_url(native_id: str, handle: str | None) -> str:
    if handle:
        return f"https://x.com/{handle}/status/{native_id}"
    return f"https://x.com/i/web/status/{native_id}"


def language(code: str | None) -> str | None:
    return None if code is None or code in _NO_LANGUAGE else code


def geojson_point(value: Any) -> GeoPoint | None:
    """A GeoJSON Point, whose coordinates are [longitude, latitude] (in that order)."""
    point = as_dict(value)
    coordinates = as_list(point.get("coordinates"))
    if point.get("type") != "Point" or len(coordinates) != 2:
        return None
    lon, lat = coordinates
    return GeoPoint(lat=lat, lon=lon)
