"""Which platform's payload a decoded JSON record is, and the Posts in it.

The shape is decided record by record, not once per file, so one archive may mix
platforms and a malformed first record does not decide how the rest is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from overheard.errors import MessageError
from overheard.model import Post, Provenance

from . import reddit, x_v1, x_v2
from .errors import UnknownShape
from .normalise import attempt


def posts_in(record: Any, provenance: Provenance) -> Iterator[Post | MessageError]:
    """The posts of one record, in order, with an error in place of each unusable one.

    A JSON array is read element by element: it is a Reddit comment page (two listings)
    or an X v1.1 timeline (statuses).
    """
    if isinstance(record, list):
        for element in record:
            if isinstance(element, dict):
                yield from _posts_in_object(element, provenance)
            else:
                yield UnknownShape(f"a JSON {type(element).__name__} in an array is not a post")
    elif isinstance(record, dict):
        yield from _posts_in_object(record, provenance)
    else:
        yield UnknownShape(f"a JSON {type(record).__name__} is not a post or a response")


def _posts_in_object(
    record: dict[str, Any], provenance: Provenance
) -> Iterator[Post | MessageError]:
    if reddit.is_listing(record):
        yield from reddit.posts_from_listing(record, provenance)
    elif reddit.is_thing(record):
        yield from reddit.posts_from_thing(record, provenance)
    elif x_v1.is_search_response(record):
        yield from x_v1.posts_from_search(record, provenance)
    elif x_v1.is_status(record):
        yield attempt(x_v1.post_from_status, record, provenance)
    elif x_v2.is_response(record):
        yield from x_v2.posts_from_response(record, provenance)
    elif "subreddit" in record and reddit.is_pushshift(record):
        yield attempt(reddit.post_from_pushshift, record, provenance)
    elif x_v2.is_tweet(record):
        yield attempt(x_v2.post_from_tweet, record, provenance)
    else:
        keys = ", ".join(sorted(record)[:8]) or "none"
        yield UnknownShape(
            f"not an X (v2 or v1.1) or Reddit record: no known shape fits its keys ({keys})"
        )
