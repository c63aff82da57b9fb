"""Driving a live connector: fetch a batch, send it, flush, and only then move its cursor.

A connector (`x_search.XSearch`, `reddit_stream.RedditStreams`) yields `Batch`es: the
posts (or dead letters) of one page or one response, the cursor to store once they are
acknowledged, and the deletions it noticed. `feed_live` sends each batch, waits for
Kafka to acknowledge all of it (acks=all, `Producer.flush`), then commits the cursor, the
deletions and the ids of the posts sent (to re-check later) in one transaction
(`CursorStore.commit`). A crash in between re-sends at
most that batch; nothing is skipped.

A connector raises `TransientError` for what may pass (5xx, a torn response, the
network): the poll starts again from the stored cursors after a backoff. It raises
`CredentialsRejected` for what cannot (401): the connector stops at once, loudly, with
no retry. Secrets are never in a message; `redact_secrets` keeps them out of the HTTP
libraries' own debug logs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from overheard.bus.base import Producer, Topics
from overheard.deadletter import DeadLetter
from overheard.errors import OverheardError
from overheard.model import Post
from overheard.retry import retry_transient
from overheard.settings import RetrySettings
from overheard.summary import Summary

from .cursors import Cursor, CursorStore, Deletion, Sent

log = logging.getLogger(__name__)


class CredentialsRejected(OverheardError):
    """The platform refused the credentials (401) or their access level (403): retrying
    cannot help, so nothing is."""


@dataclass
class Batch:
    """What one request gave: posts and dead letters, the cursor after them, deletions seen."""

    stream: str
    items: list[Post | DeadLetter]
    cursor: Cursor
    deletions: list[Deletion] = field(default_factory=list)


class LiveConnector(Protocol):
    name: str
    #: How long to wait between polls that reached the newest post.
    poll_interval_s: float

    def poll(self, cursors: CursorStore) -> Iterator[Batch]:
        """The batches since each stream's stored cursor, in the order the platform pages.

        The generator is resumed only after the previous batch's cursor was committed.
        """
        ...


def feed_live(
    connector: LiveConnector,
    producer: Producer,
    cursors: CursorStore,
    topics: Topics,
    summary: Summary,
    retry: RetrySettings,
    stop: threading.Event,
) -> None:
    """Poll `connector` until `stop` is set; raises CredentialsRejected (and never retries it)."""
    while not stop.is_set():
        retry_transient(
            lambda: poll_once(connector, producer, cursors, topics, summary, retry, stop),
            retry,
            stop,
            f"polling {connector.name}",
        )
        stop.wait(connector.poll_interval_s)


def poll_once(
    connector: LiveConnector,
    producer: Producer,
    cursors: CursorStore,
    topics: Topics,
    summary: Summary,
    retry: RetrySettings,
    stop: threading.Event,
) -> None:
    """One pass over every stream of `connector`, each batch committed after its flush."""
    for batch in connector.poll(cursors):
        for item in batch.items:
            _send(producer, topics, summary, item)
        retry_transient(producer.flush, retry, stop, f"sending {batch.stream} to Kafka")
        sent = [Sent(i.id, i.created_at) for i in batch.items if isinstance(i, Post)]
        cursors.commit(batch.stream, batch.cursor, batch.deletions, sent)
        if batch.items or batch.deletions:
            log.info(
                "%s: %d posts sent, %d deletions noted; cursor %s",
                batch.stream,
                len(batch.items),
                len(batch.deletions),
                batch.cursor,
            )
        if stop.is_set():
            return


def _send(producer: Producer, topics: Topics, summary: Summary, item: Post | DeadLetter) -> None:
    if isinstance(item, Post):
        summary.read()
        producer.send(topics.posts, item.to_bytes(), key=item.id.encode())
    else:
        log.warning("dead letter from ingest at %s: %s", item.origin, item.reason)
        summary.dead_lettered(item)
        producer.send(
            topics.deadletters, item.original, key=item.key, headers=tuple(item.headers())
        )


class _Redact(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self._secrets):
            for secret in self._secrets:
                message = message.replace(secret, "**********")
            record.msg, record.args = message, None
        return True


def redact_secrets(logger_names: Iterable[str], secrets: Iterable[str]) -> None:
    """Mask `secrets` in whatever these loggers write (tweepy logs request headers at DEBUG).

    A logger's filters see only the records made by that logger, so the names must be the
    exact loggers that log requests, not their parents.
    """
    redact = _Redact(list(secrets))
    for name in logger_names:
        logging.getLogger(name).addFilter(redact)
