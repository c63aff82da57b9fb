"""Reddit listings, comment pages and Pushshift dumps (from PRAW's cassettes) as Posts."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from overheard.deadletter import DeadLetter
from overheard.ingest import Position
from overheard.model import Post

Read = Callable[..., list[tuple[Post | DeadLetter, Position]]]
Jsonl = Callable[[list[Any]], bytes]


def things(body: Any) -> Iterator[dict[str, Any]]:
    """Every t1/t3 thing of a body, depth first, comments before their replies."""
    listings = body if isinstance(body, list) else [body]
    for listing in listings:
        for child in listing["data"]["children"]:
            yield child
            replies = child["data"].get("replies")
            if isinstance(replies, dict):
                yield from things(replies)


def listing_of(children: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "Listing", "data": {"children": children, "after": None, "before": None}}


def only_posts(items: list[tuple[Post | DeadLetter, Position]]) -> list[Post]:
    posts = [item for item, _ in items if isinstance(item, Post)]
    assert len(posts) == len(items), [i for i, _ in items if isinstance(i, DeadLetter)]
    return posts


@pytest.fixture(scope="module")
def listing_posts(
    tmp_path_factory: pytest.TempPathFactory,
    reddit_responses: dict[str, Any],
    read: Read,
    jsonl: Jsonl,
) -> list[Post]:
    """Every API body of the cassettes, one per line, read as posts (none dead-lettered)."""
    path = tmp_path_factory.mktemp("reddit") / "listings.jsonl"
    path.write_bytes(jsonl(list(reddit_responses.values())))
    return only_posts(read(path))


def test_every_submission_and_comment_becomes_a_post(
    listing_posts: list[Post], reddit_responses: dict[str, Any]
) -> None:
    expected = [t["data"]["name"] for body in reddit_responses.values() for t in things(body)]
    assert len(expected) == 514
    assert [post.id for post in listing_posts] == [f"reddit:{n}" for n in expected]


def test_a_submission_is_its_title_then_its_body(
    listing_posts: list[Post], reddit_responses: dict[str, Any]
) -> None:
    posts = {post.id: post for post in listing_posts}
    submissions = [t["data"] for b in reddit_responses.values() for t in things(b)]
    submissions = [s for s in submissions if "title" in s]
    with_body = [s for s in submissions if s["selftext"]]
    without = [s for s in submissions if not s["selftext"]]
    assert with_body and without
    for data in with_body:
        assert posts[f"reddit:{data['name']}"].text == f"{data['title']}\n\n{data['selftext']}"
    for data in without:
        post = posts[f"reddit:{data['name']}"]
        assert post.text == data["title"] == post.thread.title
        assert post.url == "https://www.reddit.com" + data["permalink"]
        assert post.thread.subreddit == data["subreddit"]
        assert post.thread.conversation == post.id
        assert post.created_at == datetime.fromtimestamp(data["created_utc"], UTC)
        assert post.author.handle == data["author"]


def test_comments_point_at_their_parent_and_submission(listing_posts: list[Post]) -> None:
    posts = {post.id: post for post in listing_posts}
    # TestSubmission.test_comments: submission 2gmzqe, comment cklfmye, its reply cklhv0f.
    reply = posts["reddit:t1_cklhv0f"]
    assert reply.thread.reply_to == "reddit:t1_cklfmye"
    assert reply.thread.conversation == "reddit:t3_2gmzqe"
    assert posts["reddit:t1_cklfmye"].thread.reply_to == "reddit:t3_2gmzqe"
    # Comments of 2016 carry no permalink; their URL is built from the submission.
    assert reply.url == "https://www.reddit.com/r/redditdev/comments/2gmzqe/_/cklhv0f/"
    # r/askreddit's latest comments name the submission's title.
    comment = posts["reddit:t1_d4y8bdp"]
    assert comment.thread.title is not None
    assert comment.thread.title.startswith("[Serious] To anyone who")
    assert comment.text.startswith("great, life is so much better")
    assert comment.author.handle == "preppypuppy"


def test_newer_comments_keep_permalink_and_author_id(listing_posts: list[Post]) -> None:
    posts = {post.id: post for post in listing_posts}
    comment = posts["reddit:t1_k3yrfii"]
    assert comment.url is not None and comment.url.endswith("/agi5zf/<TEST_SUBREDDIT>/k3yrfii/")
    assert comment.author.id == "t2_puq6r71y"
    assert comment.thread.reply_to == "reddit:t1_k3u4rtt"


def test_pushshift_lines_read_like_the_api_things_they_were_dumped_from(
    tmp_path: Path,
    reddit_responses: dict[str, Any],
    listing_posts: list[Post],
    read: Read,
    jsonl: Jsonl,
) -> None:
    dumped: list[dict[str, Any]] = []
    for body in reddit_responses.values():
        for thing in things(body):
            data = {k: v for k, v in thing["data"].items() if k not in ("name", "replies")}
            if len(dumped) % 2:  # Pushshift sometimes quotes created_utc.
                data["created_utc"] = str(data["created_utc"])
            dumped.append(data)
    path = tmp_path / "RS_2016-03.ndjson"
    path.write_bytes(jsonl(dumped))
    from_dump = only_posts(read(path))
    assert len(from_dump) == len(listing_posts) == 514
    for dump, api in zip(from_dump, listing_posts, strict=True):
        assert dump.model_dump(exclude={"provenance"}) == api.model_dump(exclude={"provenance"})


def test_deleted_authors_are_none_and_removed_bodies_are_dead_letters(
    tmp_path: Path, reddit_responses: dict[str, Any], read: Read, jsonl: Jsonl
) -> None:
    comments = copy.deepcopy(
        reddit_responses["TestSubredditListings.test_comments#1"]["data"]["children"][:3]
    )
    comments[0]["data"]["author"] = "[deleted]"
    comments[1]["data"]["body"] = "[removed]"
    path = tmp_path / "comments.jsonl"
    path.write_bytes(jsonl([listing_of(comments)]))
    (kept, first), (dead, second), (last, end) = read(path)
    assert isinstance(kept, Post) and kept.author.handle is None and kept.author.id is None
    assert isinstance(dead, DeadLetter) and dead.error == "MissingText"
    name = comments[1]["data"]["name"]
    assert dead.reason == f"reddit:{name} has no body (empty, deleted or removed)"
    assert dead.origin == "comments.jsonl:1"
    assert isinstance(last, Post)
    assert [(p.offset, p.item) for p in (first, second)] == [(0, 1), (0, 2)]
    assert (end.offset, end.line, end.item) == (path.stat().st_size, 2, 0)


def test_a_child_that_is_not_a_post_is_dead_lettered_alone(
    tmp_path: Path, reddit_responses: dict[str, Any], read: Read, jsonl: Jsonl
) -> None:
    children = copy.deepcopy(
        reddit_responses["TestSubredditListings.test_new#1"]["data"]["children"][:2]
    )
    subreddit = {"kind": "t5", "data": {"display_name": "baltimore", "name": "t5_2qh1i"}}
    more = {"kind": "more", "data": {"count": 3, "children": ["d4y8a9e"]}}
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(jsonl([listing_of([children[0], subreddit, more, children[1]])]))
    kinds = [type(item).__name__ for item, _ in read(path)]
    assert kinds == ["Post", "DeadLetter", "Post"]
    (_, (dead, _), _) = read(path)
    assert isinstance(dead, DeadLetter) and dead.error == "UnknownShape"
    assert "'t5'" in dead.reason
