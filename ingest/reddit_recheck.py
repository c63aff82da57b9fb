"""Which posts sent from Reddit were deleted or removed since: praw's `Reddit.info`.

`info(fullnames=…)` asks `/api/info` for 100 fullnames a request. Reddit answers a deleted
or removed thing with its text replaced and its author `[deleted]` (praw turns that author
into None), and a submission says who removed it in `removed_by_category`; `reddit.gone`
reads the signs. A fullname the answer leaves out (its subreddit banned or made private)
is no longer public either, and is recorded as gone too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import praw
import prawcore

from overheard.model import Platform, Post

from .cursors import Deletion
from .reddit import Kind, gone
from .reddit_client import failure

_KINDS: dict[str, Kind] = {"t1": "t1", "t3": "t3"}


class RedditRecheck:
    """Asks Reddit which of the posts sent are gone; a `recheck.Checker`."""

    platform = Platform.REDDIT.value
    stream = "reddit:recheck"

    def __init__(self, reddit: praw.Reddit) -> None:
        self._reddit = reddit

    def check(self, post_ids: Sequence[str]) -> list[Deletion]:
        asked = [post_id.removeprefix("reddit:") for post_id in post_ids]
        deletions: list[Deletion] = []
        answered: set[str] = set()
        try:
            for thing in self._reddit.info(fullnames=asked):
                answered.add(thing.fullname)
                kind = _KINDS.get(thing.fullname[:2])
                reason = gone(fields(thing), kind) if kind else None
                if reason is not None:
                    deletions.append(
                        Deletion(Post.make_id(Platform.REDDIT, thing.fullname), reason)
                    )
        except prawcore.PrawcoreException as exc:
            raise failure(exc, "/api/info") from exc
        for fullname in asked:
            if fullname not in answered:
                deletions.append(
                    Deletion(
                        Post.make_id(Platform.REDDIT, fullname),
                        "no longer on Reddit (/api/info does not return it)",
                    )
                )
        return deletions


def fields(thing: Any) -> dict[str, Any]:
    """A praw Comment's or Submission's attributes as Reddit sent them, as far as `gone`
    reads them: praw holds a `[deleted]` author as None. Read from the instance's own
    attributes, since asking praw for a missing one would fetch the thing again."""
    data = dict(vars(thing))
    if "author" in data:
        data["author"] = "[deleted]" if data["author"] is None else str(data["author"])
    return data
