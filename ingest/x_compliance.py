"""Which posts sent from X were deleted since: X API v2 batch compliance.

One job per at most `MAX_IDS` posts, one after the other (X runs one job per type at a
time): create the job (`POST /2/compliance/jobs`, type `tweets`), upload the ids, one a
line, as text/plain with a PUT to the job's pre-signed `upload_url`, ask for the job
(`GET /2/compliance/jobs/:id`) every `x.compliance_poll_s` until it is `complete`, then
download its `download_url`: JSON lines `{"id", "action", "created_at", "redacted_at",
"reason"}`, one for each post that needs an action; posts not listed are unchanged.

Every `delete` action becomes a `Deletion`, whatever its reason (`deleted`, `protected`,
`suspended`, `deactivated`, `bounced`, `scrub_geo`): `overheard forget` then drops the
post's text and author. For `scrub_geo` that is more than X asks (the geotag alone), as
no sink can drop a geotag on its own; too much forgotten is the safe side.

The upload and download URLs are signed: they are sent without the bearer token, and
their signature is masked in the debug logs of urllib3 and tweepy. Failures: as recent
search (`x_search.py`), plus a job that `failed` or `expired`, or is not done after
`x.compliance_wait_max_s`: `TransientError`, so the whole check runs again later with a
new job.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests
import tweepy

from overheard.errors import TransientError
from overheard.model import Platform, Post
from overheard.retry import Stopped
from overheard.settings import XSettings

from .cursors import Deletion
from .live import CredentialsRejected
from .normalise import as_dict, string
from .x_client import wait_for_reset, x_client

log = logging.getLogger(__name__)

#: The most ids one job is given: our bound (the docs read name none), keeping each upload
#: a few MB, well within the 15 minutes its signed URL lasts.
MAX_IDS = 100_000
#: A job whose status is one of these is still being worked on.
_PENDING = frozenset({"created", "in_progress"})
_SIGNATURE = re.compile(r"(X-Goog-Signature=)[^&\s\"'>]+")
#: The loggers that write request URLs (urllib3) or whole answers (tweepy) at DEBUG.
_URL_LOGGERS = ("urllib3.connectionpool", "tweepy.client")


class _MaskSignatures(logging.Filter):
    """Masks the signature of a signed URL: with it, anyone may read or write the job's files."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "X-Goog-Signature=" in message:
            record.msg, record.args = _SIGNATURE.sub(r"\1**********", message), None
        return True


_MASK = _MaskSignatures()


class XCompliance:
    """Asks X which of the posts sent are gone; a `recheck.Checker`."""

    platform = Platform.X.value
    stream = "x:compliance"

    def __init__(
        self,
        client: tweepy.Client,
        settings: XSettings,
        stop: threading.Event,
        *,
        clock: Callable[[], float] = time.time,
        transfers: requests.Session | None = None,
    ) -> None:
        self._client = client
        self.settings = settings
        self._stop = stop
        self._clock = clock
        #: For the signed upload and download URLs: no bearer token travels there.
        self.transfers = transfers or requests.Session()
        for name in _URL_LOGGERS:
            logging.getLogger(name).addFilter(_MASK)  # once: the same filter is not added twice

    @classmethod
    def from_settings(cls, settings: XSettings, stop: threading.Event) -> XCompliance:
        return cls(x_client(settings), settings, stop)

    def check(self, post_ids: Sequence[str]) -> list[Deletion]:
        natives = [post_id.removeprefix("x:") for post_id in post_ids]
        deletions: list[Deletion] = []
        for start in range(0, len(natives), MAX_IDS):
            deletions += self._job(natives[start : start + MAX_IDS])
        return deletions

    def _job(self, ids: list[str]) -> list[Deletion]:
        job = self._ask(lambda: self._client.create_compliance_job(type="tweets"))
        job_id = string(job, "id")
        upload, download = string(job, "upload_url"), string(job, "download_url")
        if job_id is None or upload is None or download is None:
            raise TransientError("X created a compliance job without its id or URLs")
        log.info("X compliance job %s: checking %d posts", job_id, len(ids))
        self._transfer("PUT", upload, data="\n".join(ids).encode())
        self._await(job_id)
        return _deletions(self._transfer("GET", download).text)

    def _await(self, job_id: str) -> None:
        """Ask for the job until it is complete; raises TransientError when it will not be."""
        deadline = self._clock() + self.settings.compliance_wait_max_s
        while True:
            status = string(self._ask(lambda: self._client.get_compliance_job(job_id)), "status")
            if status == "complete":
                return
            if status not in _PENDING:
                raise TransientError(f"X's compliance job {job_id} ended {status}")
            if self._clock() >= deadline:
                raise TransientError(
                    f"X's compliance job {job_id} was not done after "
                    f"{self.settings.compliance_wait_max_s:.0f} s (x.compliance_wait_max_s)"
                )
            if self._stop.wait(self.settings.compliance_poll_s):
                raise Stopped("waiting for X's compliance job")

    def _ask(self, request: Callable[[], Any]) -> dict[str, Any]:
        """The `data` of an API answer; X's errors mapped as recent search maps them."""
        while True:
            try:
                response = request()
            except tweepy.TooManyRequests as exc:
                wait_for_reset(exc.reset_time, self.settings, self._stop, self._clock)
                continue
            except tweepy.Unauthorized as exc:
                raise CredentialsRejected(
                    "X refused the bearer token (401 Unauthorized) for batch compliance: set "
                    "a valid one in OVERHEARD_X__BEARER_TOKEN; stopped without retrying."
                ) from exc
            except tweepy.Forbidden as exc:
                raise CredentialsRejected(
                    "X refused batch compliance (403 Forbidden): the app's access level "
                    "does not include it. Deleted posts cannot be checked; set "
                    "x.compliance_every_h = 0 only if they are honoured some other way."
                ) from exc
            except tweepy.TwitterServerError as exc:
                raise TransientError(f"X answered {exc.response.status_code}") from exc
            except requests.RequestException as exc:
                raise TransientError(f"X batch compliance failed: {type(exc).__name__}") from exc
            return as_dict(as_dict(response).get("data"))

    def _transfer(self, method: str, url: str, *, data: bytes | None = None) -> requests.Response:
        """A PUT or GET of a signed URL; the URL is never in a message (it is a credential)."""
        what = "upload of the ids" if method == "PUT" else "download of the results"
        headers = {"Content-Type": "text/plain"} if data is not None else {}
        try:
            response = self.transfers.request(method, url, data=data, headers=headers, timeout=60)
        except requests.RequestException as exc:
            raise TransientError(f"X compliance {what} failed: {type(exc).__name__}") from exc
        if response.status_code >= 300:
            raise TransientError(f"X compliance {what} answered {response.status_code}")
        return response


def _deletions(results: str) -> list[Deletion]:
    """The deletions in a job's results (JSON lines); a line cut short fails the check."""
    deletions = []
    for number, line in enumerate(results.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = as_dict(json.loads(line))
        except ValueError as exc:
            raise TransientError(f"line {number} of X's compliance results is not JSON") from exc
        native = string(event, "id")
        if native is None or event.get("action") != "delete":
            continue
        reason = string(event, "reason") or "unknown"
        deletions.append(
            Deletion(Post.make_id(Platform.X, native), f"deleted on X (compliance: {reason})")
        )
    return deletions
