"""Reddit listings, things and Pushshift dumps, as Posts.

Reads what the Reddit API returns (a `Listing` of `t3` submissions or `t1` comments; a
comment page, which is a JSON array of two listings whose comments nest their `replies`)
and Pushshift-style dumps (one bare submission or comment object per line).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from overheard.errors import MalformedMessage, MessageError
from overheard.model import Author, Platform, Post, Provenance

from .errors import BadTimestamp, MissingField, MissingText, UnknownShape
from .normalise import as_dict, attempt, parse_time, string

SITE = "https://www.reddit.com"

Kind = Literal["t1", "t3"]

#: What Reddit puts in place of a body or an author that was deleted or removed.
_GONE = frozenset({"[deleted]", "[removed]"})
_FULLNAME = re.compile(r"t[1-6]_[0-9a-z]+")
_SUBREDDIT_IN_PATH = re.compile(r"/r/([^/?#]+)")


def is_listing(record: dict[str, Any]) -> bool:
    return record.get("kind") == "Listing"


def is_thing(record: dict[str, Any]) -> bool:
    return "kind" in record and "data" in record


def is_pushshift(record: dict[str, Any]) -> bool:
    """A bare submission (it has a title) or comment (it has link_id and parent_id)."""
    return "title" in record or ("link_id" in record and "parent_id" in record)


def posts_from_listing(
    listing: dict[str, Any], provenance: Provenance
) -> Iterator[Post | MessageError]:
    """The posts of a listing, each comment followed by its replies, depth first."""
    children = as_dict(listing.get("data")).get("children")
    if not isinstance(children, list):
        yield MalformedMessage("a Reddit Listing without a list of `data.children`")
        return
    for child in children:
        yield from posts_from_thing(child, provenance)


def posts_from_thing(thing: Any, provenance: Provenance) -> Iterator[Post | MessageError]:
    """One `{"kind", "data"}` thing: a submission, or a comment and its nested replies.

    `more` things (the ids of comments the listing did not load) hold no post.
    """
    kind = as_dict(thing).get("kind")
    if kind == "more":
        return
    if kind not in ("t1", "t3"):
        yield UnknownShape(f"a Reddit thing of kind {kind!r} is not a submission or comment")
        return
    data = thing.get("data")
    yield attempt(post_from_data, data, kind, provenance)
    replies = as_dict(data).get("replies")
    if kind == "t1" and isinstance(replies, dict):
        yield from posts_from_listing(replies, provenance)


def gone(data: dict[str, Any], kind: Kind) -> str | None:
    """Why the thing is no longer (wholly) on Reddit, or None when it is.

    Reddit keeps a deleted or removed thing in its listings with its text replaced by
    `[deleted]` / `[removed]` and, when its author deleted it or their account, the
    author by `[deleted]`; a submission also says who removed it in
    `removed_by_category` (`deleted`, `author`, `moderator`, `reddit`, `copyright_takedown`,
    …), null while it is up. A comment whose submission is gone (`link_author` is
    `[deleted]`) is itself still there.
    """
    if kind == "t3":
        category = string(data, "removed_by_category")
        if category is not None:
            return f"removed on Reddit ({category})"
    text = (string(data, "body" if kind == "t1" else "selftext") or "").strip()
    if text in _GONE:
        return f"{text[1:-1]} on Reddit"
    if data.get("author") == "[deleted]":
        return "its author's Reddit account was deleted"
    return None


def post_from_pushshift(record: dict[str, Any], provenance: Provenance) -> Post:
    return post_from_data(record, "t3" if "title" in record else "t1", provenance)


def post_from_data(data: Any, kind: Kind, provenance: Provenance) -> Post:
    """A submission (`t3`) or comment (`t1`) from its `data` object."""
    if not isinstance(data, dict):
        raise UnknownShape(f"a Reddit {kind} whose data is a JSON {type(data).__name__}")
    post_id = Post.make_id(Platform.REDDIT, _fullname(data, kind))
    if "created_utc" not in data:
        raise BadTimestamp(f"{post_id} has no created_utc")
    created = parse_time(data["created_utc"], f"{post_id} created_utc")
    permalink = string(data, "permalink")
    subreddit = string(data, "subreddit") or subreddit_in(permalink)
    if kind == "t3":
        title = string(data, "title")
        text = submission_text(title, string(data, "selftext"))
        if text is None:
            raise MissingText(f"{post_id} has neither a title nor a body")
        url = absolute(permalink) or _submission_url(subreddit, post_id)
        thread = {"subreddit": subreddit, "conversation": post_id, "title": title}
        link = string(data, "url")
        # A link post points elsewhere; a self post's `url` is its own permalink.
        is_link = link is not None and data.get("is_self") is not True and link != url
        links: tuple[str, ...] = (link,) if link and is_link else ()
    else:
        text = string(data, "body")
        if text is None or text.strip() in _GONE:
            raise MissingText(f"{post_id} has no body (empty, deleted or removed)")
        link_id = reference(string(data, "link_id"))
        url = absolute(permalink) or _comment_url(subreddit, link_id, post_id)
        thread = {
            "subreddit": subreddit,
            "reply_to": reference(string(data, "parent_id")),
            "conversation": link_id,
            "title": string(data, "link_title"),
        }
        links = ()
    # One validation of plain fields: about twice as fast as building the nested models.
    return Post.model_validate(
        {
            "id": post_id,
            "platform": Platform.REDDIT,
            "url": url,
            "created_at": created,
            "author": author_fields(string(data, "author"), string(data, "author_fullname")),
            "text": text,
            "links": links,
            "thread": thread,
            "provenance": provenance,
        }
    )


def submission_text(title: str | None, selftext: str | None) -> str | None:
    """The title, then a blank line and the body when there is one that was not deleted."""
    parts = [part for part in (title, selftext) if part and part.strip() not in _GONE]
    return "\n\n".join(parts) if parts else None


def author(handle: str | None, author_id: str | None = None) -> Author:
    return Author(**author_fields(handle, author_id))


def author_fields(handle: str | None, author_id: str | None = None) -> dict[str, str | None]:
    """The author's fields; none for a deleted account."""
    if handle is None or handle in _GONE:
        return {}
    return {"id": author_id, "handle": handle}


def absolute(permalink: str | None) -> str | None:
    """Reddit's permalinks are site-relative (`/r/…`); old exports hold full URLs."""
    if permalink is None:
        return None
    return SITE + permalink if permalink.startswith("/") else permalink


def subreddit_in(url: str | None) -> str | None:
    match = _SUBREDDIT_IN_PATH.search(url) if url else None
    return match.group(1) if match else None


def reference(fullname: str | None) -> str | None:
    """`reddit:<fullname>` for a thing this one points at (its parent, its submission)."""
    if fullname is None:
        return None
    if not _FULLNAME.fullmatch(fullname):
        raise MalformedMessage(f"{fullname!r} is not a Reddit fullname (such as t3_wp55z)")
    return Post.make_id(Platform.REDDIT, fullname)


def _fullname(data: dict[str, Any], kind: Kind) -> str:
    name = string(data, "name")
    if name is None:
        native = string(data, "id")
        if native is None:
            raise MissingField(f"a Reddit {kind} with neither `name` nor `id`")
        name = native if native.startswith(f"{kind}_") else f"{kind}_{native}"
    if not name.startswith(f"{kind}_") or not _FULLNAME.fullmatch(name):
        raise MalformedMessage(f"{name!r} is not the fullname of a Reddit {kind}")
    return name


def _submission_url(subreddit: str | None, post_id: str) -> str | None:
    if subreddit is None:
        return None
    return f"{SITE}/r/{subreddit}/comments/{post_id.removeprefix('reddit:t3_')}/"


def _comment_url(subreddit: str | None, link_id: str | None, post_id: str) -> str | None:
    if subreddit is None or link_id is None:
        return None
    submission = link_id.removeprefix("reddit:t3_")
    return f"{SITE}/r/{subreddit}/comments/{submission}/_/{post_id.removeprefix('reddit:t1_')}/"
