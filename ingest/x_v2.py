"""X API v2 responses and tweet objects, as Posts.

A v2 tweet names its author and place by id only; the objects are in the response's
`includes`, so a response (search, timeline, lookup) is normalised as a whole. Tweets
written one per line are read too, including twarc2's flattened ones, which carry the
author inline (`author`) and the place merged into `geo`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from overheard.errors import MalformedMessage, MessageError
from overheard.model import (
    Platform,
    PlatformGeo,
    PlatformPlace,
    Post,
    Provenance,
)

from .errors import MissingText, UnknownShape
from .normalise import as_dict, as_list, attempt, string, unique
from .x_common import created_at, geojson_point, language, status_url, tweet_id

Objects = dict[str, dict[str, Any]]


#: The top-level members of an X API v2 response (any one of them makes a record one).
_RESPONSE_KEYS = frozenset({"data", "includes", "meta", "errors"})


def is_response(record: dict[str, Any]) -> bool:
    return not _RESPONSE_KEYS.isdisjoint(record)


def is_tweet(record: dict[str, Any]) -> bool:
    return "id" in record and ("text" in record or "note_tweet" in record)


def posts_from_response(
    response: dict[str, Any], provenance: Provenance
) -> Iterator[Post | MessageError]:
    """The tweets in `data`. A response with no `data` (no results, or only `errors`) has none.

    `includes.tweets` (the tweets these answer or quote) are context, not results, and are
    not posts of their own here.
    """
    data = response.get("data")
    if data is None:
        return
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        yield MalformedMessage(f"X v2 response `data` is a JSON {type(data).__name__}")
        return
    includes = as_dict(response.get("includes"))
    users = _by_id(includes.get("users"))
    places = _by_id(includes.get("places"))
    tweets = _by_id(includes.get("tweets"))
    for tweet in data:
        yield attempt(post_from_tweet, tweet, provenance, users, places, tweets)


def post_from_tweet(
    tweet: Any,
    provenance: Provenance,
    users: Objects | None = None,
    places: Objects | None = None,
    tweets: Objects | None = None,
) -> Post:
    """A Post from a v2 tweet; `users`, `places` and `tweets` are the response's
    `includes` by id, which name the accounts the tweet answers and quotes."""
    if not isinstance(tweet, dict):
        raise UnknownShape(f"an X v2 `data` item is a JSON {type(tweet).__name__}, not a tweet")
    native = tweet_id(tweet.get("id"))
    # Posts longer than 280 characters: `text` is cut short, `note_tweet` holds all of it.
    note = as_dict(tweet.get("note_tweet"))
    text = string(note, "text") or string(tweet, "text")
    if text is None:
        raise MissingText(f"x:{native} has no text")
    entities = as_dict(note.get("entities") if "entities" in note else tweet.get("entities"))
    author_id = string(tweet, "author_id")
    user = (users or {}).get(author_id or "") or as_dict(tweet.get("author"))
    handle = string(user, "username")
    # One validation of plain fields: about twice as fast as building the nested models.
    return Post.model_validate(
        {
            "id": Post.make_id(Platform.X, native),
            "platform": Platform.X,
            "url": status_url(native, handle),
            "created_at": created_at(native, tweet.get("created_at")),
            "author": {
                "id": author_id or string(user, "id"),
                "handle": handle,
                "profile_location": string(user, "location"),
            },
            "text": text,
            "language": language(string(tweet, "lang")),
            "mentions": unique(
                [as_dict(m).get("username") for m in as_list(entities.get("mentions"))]
            ),
            "hashtags": unique([as_dict(h).get("tag") for h in as_list(entities.get("hashtags"))]),
            "links": unique([_link(u) for u in as_list(entities.get("urls"))]),
            "geo": _geo(as_dict(tweet.get("geo")), places or {}),
            "thread": {
                "reply_to": _replied_to(tweet),
                "reply_to_author": _username(users, string(tweet, "in_reply_to_user_id")),
                "quoted_author": _quoted_author(tweet, users or {}, tweets or {}),
                "conversation": _prefixed(string(tweet, "conversation_id")),
            },
            "provenance": provenance,
        }
    )


def _by_id(objects: Any) -> Objects:
    return {o["id"]: o for o in as_list(objects) if isinstance(o, dict) and string(o, "id")}


def _link(url: Any) -> str | None:
    url = as_dict(url)
    return string(url, "expanded_url") or string(url, "url")


def _replied_to(tweet: dict[str, Any]) -> str | None:
    for ref in as_list(tweet.get("referenced_tweets")):
        ref = as_dict(ref)
        if ref.get("type") == "replied_to":
            return _prefixed(string(ref, "id"))
    return None


def _username(users: Objects | None, user_id: str | None) -> str | None:
    return string((users or {}).get(user_id or "") or {}, "username")


def _quoted_author(tweet: dict[str, Any], users: Objects, tweets: Objects) -> str | None:
    for ref in as_list(tweet.get("referenced_tweets")):
        ref = as_dict(ref)
        if ref.get("type") == "quoted":
            quoted = as_dict(tweets.get(string(ref, "id") or ""))
            return _username(users, string(quoted, "author_id"))
    return None


def _prefixed(native: str | None) -> str | None:
    return Post.make_id(Platform.X, tweet_id(native)) if native else None


def _geo(geo: dict[str, Any], places: Objects) -> PlatformGeo | None:
    if not geo:
        return None
    place_id = string(geo, "place_id")
    found = places.get(place_id or "") or (geo if "full_name" in geo else None)
    if found is not None:
        place: PlatformPlace | None = _place(found)
    else:
        # The place was not expanded (no `expansions=geo.place_id`): its id is all there is.
        place = PlatformPlace(id=place_id) if place_id else None
    point = geojson_point(geo.get("coordinates"))
    return PlatformGeo(point=point, place=place) if point or place else None


def _place(place: dict[str, Any]) -> PlatformPlace:
    bbox = as_list(as_dict(place.get("geo")).get("bbox"))
    return PlatformPlace(
        id=string(place, "id") or string(place, "place_id"),
        name=string(place, "name"),
        full_name=string(place, "full_name"),
        country_code=string(place, "country_code"),
        bbox=tuple(bbox) if len(bbox) == 4 else None,
    )
