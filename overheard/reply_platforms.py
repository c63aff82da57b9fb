"""Posting approved replies on X (tweepy) and Reddit (praw): the `overheard.replies.Replier`s.

Both answer as the city's own account, with credentials from the environment only:

- X: an OAuth 2.0 user access token with ``tweet.write`` (``OVERHEARD_REPLIES__X_USER_TOKEN``)
  and that account's user id (``[replies] x_user_id``). `post` is ``create_tweet(text=…,
  in_reply_to_tweet_id=…)``; `find` reads the account's recent posts since the resident's
  one (``GET /2/users/:id/tweets``) for a reply to it.
- Reddit: a script app's client id and secret (``[reddit]``) and the account's user name
  and password (``[replies] reddit_username``, ``OVERHEARD_REPLIES__REDDIT_PASSWORD``).
  `post` is praw's ``reply``; `find` reads the account's newest comments for one whose
  parent is the resident's post or comment.

`find` matches on the post replied to, not on the text: the account replies at most once to
a post (the queue has one reply per issue), and X rewrites links in a post's text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import praw
import tweepy

from overheard.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from overheard.settings import Settings

#: How many of the account's newest posts or comments `find` reads.
HISTORY = 100


def native_id(post_id: str, platform: str) -> str:
    """`x:123` → `123`; `reddit:t1_abc` → `t1_abc` (a Reddit fullname)."""
    prefix, _, native = post_id.partition(":")
    if prefix != platform or not native:
        raise ValueError(f"{post_id!r} is not a {platform} post id")
    return native


class XReplier:
    """Replies on X as the account whose user token it holds."""

    def __init__(self, client: tweepy.Client, user_id: str) -> None:
        self._client = client
        self._user_id = user_id

    def __repr__(self) -> str:
        return f"XReplier(user_id={self._user_id!r})"

    def post(self, post_id: str, text: str) -> str:
        response = self._client.create_tweet(
            text=text, in_reply_to_tweet_id=native_id(post_id, "x"), user_auth=False
        )
        return str(response.data["id"])

    def find(self, post_id: str, text: str) -> str | None:
        native = native_id(post_id, "x")
        response = self._client.get_users_tweets(
            self._user_id,
            since_id=native,
            max_results=HISTORY,
            tweet_fields=["referenced_tweets"],
            user_auth=False,
        )
        for tweet in response.data or []:
            for reference in tweet.referenced_tweets or []:
                if reference.type == "replied_to" and str(reference.id) == native:
                    return str(tweet.id)
        return None


class RedditReplier:
    """Replies on Reddit as the account praw logs in with."""

    def __init__(self, reddit: praw.Reddit) -> None:
        self._reddit = reddit

    def __repr__(self) -> str:
        return "RedditReplier()"

    def post(self, post_id: str, text: str) -> str:
        fullname = native_id(post_id, "reddit")
        kind, _, short = fullname.partition("_")
        thing: Any = self._reddit.comment(short) if kind == "t1" else self._reddit.submission(short)
        comment = thing.reply(text)
        if comment is None:
            # Reddit made the comment but did not return it (praw's documented case).
            found = self.find(post_id, text)
            if found is None:
                raise TransientError(f"reddit accepted the reply to {post_id} but shows none yet")
            return found
        return str(comment.fullname)

    def find(self, post_id: str, text: str) -> str | None:
        fullname = native_id(post_id, "reddit")
        me = self._reddit.user.me()
        if me is None:
            raise ConfigError("reddit: the replies account is not logged in")
        for comment in me.comments.new(limit=HISTORY):
            if comment.parent_id == fullname:
                return str(comment.fullname)
        return None


def repliers(settings: Settings) -> dict[str, XReplier | RedditReplier]:
    """The repliers the settings have credentials for, by platform."""
    made: dict[str, XReplier | RedditReplier] = {}
    config = settings.replies
    if config.x_user_token is not None and config.x_user_id:
        client = tweepy.Client(bearer_token=config.x_user_token.get_secret_value())
        made["x"] = XReplier(client, config.x_user_id)
    reddit = settings.reddit
    if (
        config.reddit_username
        and config.reddit_password is not None
        and reddit.client_id is not None
        and reddit.client_secret is not None
    ):
        made["reddit"] = RedditReplier(
            praw.Reddit(
                client_id=reddit.client_id.get_secret_value(),
                client_secret=reddit.client_secret.get_secret_value(),
                username=config.reddit_username,
                password=config.reddit_password.get_secret_value(),
                user_agent=reddit.user_agent,
            )
        )
    return made
