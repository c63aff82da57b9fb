"""Pseudonymised authors: no sink ever receives an author's platform id, handle or profile
location unless the city's policy allows the handle for its 311.

Where this happens, and why there: `overheard.sinks.registry.create_sink` is the only way
the runtime makes a sink (built-in or third-party), and it wraps every sink it makes in
`PrivateSink`, whose `write` replaces each issue's author by `Author(key=…, key_id=…)`
before the sink sees the batch. A new sink therefore cannot forget to pseudonymise: it
never gets the raw author to store, in a column or inside the whole issue's JSON. The
classify stage could not do it instead, because the open311 sink may be allowed the
handle while the others may not. The issues topic on the bus still carries the raw
author (Kafka's retention bounds it); see docs/privacy.md.

The pseudonym is the hex HMAC-SHA256 of the author's platform id under the key in
``OVERHEARD_PRIVACY__AUTHOR_KEY``, with ``[privacy] key_id`` stored beside it: the same
author gets the same pseudonym (so ``overheard forget --author`` finds every issue of one
person), and nobody without the key can recover the id or test a guess. Without a key,
sinks get no author at all.

`PrivateSink` also records every written issue in the audit log (`overheard.audit`): the
issue, the sink, the classifier's version. For the open311 sink it then drafts the replies
to residents whose request got an id (`overheard.replies.ReplyDrafter`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from overheard import audit
from overheard.model import Author, Issue
from overheard.sinks.base import Outcome, Sink, Written

if TYPE_CHECKING:
    from overheard.settings import Settings

log = logging.getLogger(__name__)

#: The only sink the profile's `[privacy] handle_to_311` may give the handle to.
OPEN311 = "open311"
#: Who writes the audit rows of written issues.
ACTOR = "sink-stage"
#: Called after a write with the inner sink, the issues it was given and its outcomes.
AfterWrite = Callable[[Any, Sequence[Issue], Sequence[Outcome]], None]


class Pseudonymiser:
    """Turns author ids into keyed pseudonyms, and issues into issues without raw authors."""

    def __init__(self, key: SecretStr | None, key_id: str) -> None:
        self._key = key.get_secret_value().encode("utf-8") if key is not None else None
        self.key_id = key_id

    @classmethod
    def from_settings(cls, settings: Settings) -> Pseudonymiser:
        return cls(settings.privacy.author_key, settings.privacy.key_id)

    def __repr__(self) -> str:
        return f"Pseudonymiser(key_id={self.key_id!r}, keyed={self.keyed})"

    @property
    def keyed(self) -> bool:
        return bool(self._key)

    def key_of(self, author_id: str | None) -> str | None:
        """The author's pseudonym; None without an id or without a key."""
        if not author_id or not self._key:
            return None
        return hmac.new(self._key, author_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def protect(self, issue: Issue, *, keep_handle: bool = False) -> Issue:
        """The issue with its author replaced by the pseudonym (and the handle only when
        `keep_handle`); everything else, the post URL included, unchanged."""
        author = issue.post.author
        key = self.key_of(author.id)
        private = Author(
            handle=author.handle if keep_handle else None,
            key=key,
            key_id=self.key_id if key else None,
        )
        if private == author:
            return issue
        post = issue.post.model_copy(update={"author": private})
        return issue.model_copy(update={"post": post})


class PrivateSink:
    """A sink as the runtime uses it: issues pseudonymised before `write`, written ones
    audited after. Anything else (`forget`, `resolve_tokens`, …) is the inner sink's."""

    def __init__(
        self,
        inner: Sink,
        pseudonymiser: Pseudonymiser,
        audit_log: audit.AuditLog | None,
        *,
        keep_handle: bool = False,
        after_write: AfterWrite | None = None,
    ) -> None:
        self.inner = inner
        self._pseudonymiser = pseudonymiser
        self._audit = audit_log
        self._keep_handle = keep_handle
        self._after_write = after_write

    @property
    def name(self) -> str:
        return self.inner.name

    def __repr__(self) -> str:
        return repr(self.inner)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)

    def open(self) -> None:
        if not self._pseudonymiser.keyed:
            log.warning(
                "no author key (OVERHEARD_PRIVACY__AUTHOR_KEY): sink %s gets no author at all",
                self.name,
            )
        self.inner.open()
        if self._audit is not None:
            self._audit.create()

    def close(self) -> None:
        self.inner.close()
        if self._audit is not None:
            self._audit.close()

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        protected = [
            self._pseudonymiser.protect(issue, keep_handle=self._keep_handle) for issue in issues
        ]
        outcomes = self.inner.write(protected)
        if self._audit is not None and len(outcomes) == len(protected):
            self._audit.record_many(
                [
                    {
                        "action": audit.WRITTEN,
                        "actor": ACTOR,
                        "sink": self.name,
                        "issue_id": issue.id,
                        "post_id": issue.post.id,
                        "author_key": issue.post.author.key,
                        "detail": {
                            "classifier_version": issue.versions.classifier,
                            "profile_version": issue.versions.profile,
                            "category": issue.category.name,
                            "decided_by": issue.decided_by,
                        },
                    }
                    for issue, outcome in zip(protected, outcomes, strict=True)
                    if isinstance(outcome, Written)
                ]
            )
        if self._after_write is not None and len(outcomes) == len(protected):
            self._after_write(self.inner, protected, outcomes)
        return outcomes


def guard(sink: Sink, settings: Settings) -> PrivateSink:
    """`sink` wrapped as the runtime must use it (see the module's docstring); the open311
    sink also drafts acknowledgement replies (`overheard.replies`)."""
    audit_log = audit.AuditLog.from_settings(settings)
    keep_handle = False
    after_write: AfterWrite | None = None
    if sink.name == OPEN311:
        from overheard.profile import load_profile
        from overheard.replies import ReplyDrafter, ReplyQueue

        profile = load_profile(settings.city)
        keep_handle = profile.privacy.handle_to_311
        after_write = ReplyDrafter(ReplyQueue(audit_log), profile.replies)
    return PrivateSink(
        sink,
        Pseudonymiser.from_settings(settings),
        audit_log,
        keep_handle=keep_handle,
        after_write=after_write,
    )
