"""X API v1.1 statuses (search/tweets `statuses`, user timelines), as Posts.

v1.1 embeds the author (`user`) and the place in each status, so a status stands alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from overheard.errors import MalformedMessage, MessageError
from overheard.model import (
    Author,
    Platform,
    PlatformGeo,
    PlatformPlace,
    Post,
    Provenance,
    Thread,
)

from .errors import MissingText, UnknownShape
from .normalise import as_dict, as_list, attempt, string, unique
from .x_common import created_at, geojson_point, language, status_url, tweet_id


def is_search_response(record: dict[str, Any]) -> bool:
    return "statuses" in record


def is_status(record: dict[str, Any]) -> bool:
    return "id_str" in record and "user" in record


def posts_from_search(
    response: dict[str, Any], provenance: Provenance
) -> Iterator[Post | MessageError]:
    statuses = response.get("statuses")
    if not isinstance(statuses, list):
        yield MalformedMessage(f"X v1.1 `statuses` is a JSON {type(statuses).__name__}")
        return
    for status in statuses:
        yield attempt(post_from_status, status, provenance)


def post_from_status(status: Any, provenance: Provenance) -> Post:
    if not isinstance(status, dict):
        raise UnknownShape(f"an X v1.1 status is a JSON {type(status).__name__}")
    native = tweet_id(status.get("id_str") or status.get("id"))
    # Streamed statuses keep long text in `extended_tweet`; tweet_mode=extended uses full_text.
    extended = as_dict(status.get("extended_tweet"))
    body = extended or status
    text = string(body, "full_text") or string(body, "text")
    if text is None:
        raise MissingText(f"x:{native} has no text")
    entities = as_dict(body.get("entities"))
    user = as_dict(status.get("user"))
    handle = string(user, "screen_name")
    reply_to = string(status, "in_reply_to_status_id_str")
    return Post(
        id=Post.make_id(Platform.X, native),
        platform=Platform.X,
        url=status_url(native, handle),
        created_at=created_at(native, status.get("created_at")),
        author=Author(
            id=string(user, "id_str"), handle=handle, profile_location=string(user, "location")
        ),
        text=text,
        language=language(string(status, "lang")),
        mentions=unique(
            [as_dict(m).get("screen_name") for m in as_list(entities.get("user_mentions"))]
        ),
        hashtags=unique([as_dict(h).get("text") for h in as_list(entities.get("hashtags"))]),
        links=unique(
            [
                string(u, "expanded_url") or string(u, "url")
                for u in map(as_dict, as_list(entities.get("urls")))
            ]
        ),
        geo=_geo(status),
        thread=Thread(
            reply_to=Post.make_id(Platform.X, tweet_id(reply_to)) if reply_to else None,
            reply_to_author=string(status, "in_reply_to_screen_name"),
            quoted_author=string(
                as_dict(as_dict(status.get("quoted_status")).get("user")), "screen_name"
            ),
        ),
        provenance=provenance,
    )


def _geo(status: dict[str, Any]) -> PlatformGeo | None:
    point = geojson_point(status.get("coordinates"))
    place = as_dict(status.get("place"))
    platform_place = (
        PlatformPlace(
            id=string(place, "id"),
            name=string(place, "name"),
            full_name=string(place, "full_name"),
            country_code=string(place, "country_code"),
            bbox=_bbox(as_dict(place.get("bounding_box"))),
        )
        if place
        else None
    )
    return PlatformGeo(point=point, place=platform_place) if point or platform_place else None


def _bbox(box: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """[west, south, east, north] of the bounding box's polygon (rings of [lon, lat])."""
    rings = as_list(box.get("coordinates"))
    corners = [c for c in as_list(rings[0]) if len(as_list(c)) == 2] if rings else []
    if not corners:
        return None
    lons = [float(lon) for lon, _ in corners]
    lats = [float(lat) for _, lat in corners]
    return (min(lons), min(lats), max(lons), max(lats))
