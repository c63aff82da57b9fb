"""The webhook sink: each issue POSTed as JSON to a URL, signed with HMAC-SHA256.

Every request carries:

- the issue's JSON (`Issue.to_bytes()`) as the body, `Content-Type: application/json`;
- `X-Overheard-Signature: sha256=<hex>`, the HMAC-SHA256 of the body with the secret,
  which the receiver recomputes to know the request came from us, unaltered;
- `Idempotency-Key: <issue id>`: a redelivered issue carries the same key, so the
  receiver stores it once. This sink holds no state of its own: being idempotent
  across batches and restarts is the receiver's half of the bargain.

What the answer means:

- 2xx, and 409 Conflict (the receiver already has it): `Written`.
- 429, 502, 503, 504, a timeout or a connection error: the receiver is down or asks us
  to wait. That issue and the rest of the batch get `Retry` (with `Retry-After` as the
  delay when given), without trying the rest: there is no point knocking harder.
- Any other 5xx: `Retry` for that issue alone; the rest of the batch is still tried,
  so one issue the receiver chokes on does not hold the others up.
- 3xx, 401, 403, 404, 405, 407, 415: the endpoint refuses *us*, not the issue (a wrong
  URL or secret). Rejecting would dead-letter every issue for a setup mistake, so
  `WebhookSetupError` (a `ConfigError`) is raised: the stage stops, nothing is committed,
  and an operator fixes the settings.
- Any other 4xx (400, 413, 422, ...): `Rejected`, with the status and the start of the
  body.

The secret is never logged, and the URL is shown without credentials or query string.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import httpx

from overheard import __version__
from overheard.errors import ConfigError
from overheard.model import Issue
from overheard.sinks.base import WRITTEN, BaseSink, Outcome, Rejected, Retry

if TYPE_CHECKING:
    from overheard.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Overheard-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: The receiver is down or busy: the rest of the batch waits too.
WAIT_STATUSES = frozenset({429, 502, 503, 504})
#: The endpoint refuses the sender, not the issue.
SETUP_STATUSES = frozenset({401, 403, 404, 405, 407, 415})
EXCERPT = 200


class WebhookSetupError(ConfigError):
    """The endpoint refuses every request: a wrong URL or secret."""


def from_settings(settings: Settings) -> WebhookSink:
    """The factory the `overheard.sinks` entry point names: the sink for `[webhook]`,
    with the secret from the environment (OVERHEARD_WEBHOOK__SECRET)."""
    webhook = settings.webhook
    if not webhook.url:
        raise ConfigError("webhook: set [webhook] url (or OVERHEARD_WEBHOOK__URL)")
    if webhook.secret is None or not webhook.secret.get_secret_value():
        raise ConfigError("webhook: set the signing secret in OVERHEARD_WEBHOOK__SECRET")
    return WebhookSink(webhook.url, webhook.secret.get_secret_value(), webhook.timeout_s)


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def shown_url(url: str) -> str:
    """The URL without user, password or query string (where tokens hide)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


class WebhookSink(BaseSink):
    """POSTs each issue once per batch; see the module's docstring for what answers mean."""

    name = "webhook"

    def __init__(self, url: str, secret: str, timeout_s: float = 10.0) -> None:
        try:
            self._shown = shown_url(url)
        except httpx.InvalidURL:
            raise ConfigError("webhook: the url is not a valid http(s) URL") from None
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ConfigError(f"webhook: {self._shown} is not an http(s) URL")
        self._url = url
        self._secret = secret
        self._timeout_s = timeout_s
        self._client: httpx.Client | None = None
        self._redact = _Redact(url, secret)

    def __repr__(self) -> str:
        return f"WebhookSink({self._shown!r})"

    def open(self) -> None:
        # httpx logs each request's full URL at INFO: keep credentials and tokens out.
        logging.getLogger("httpx").addFilter(self._redact)
        self._client = httpx.Client(
            timeout=self._timeout_s,
            follow_redirects=False,
            headers={"User-Agent": f"overheard/{__version__}"},
        )
        log.info("webhook sink ready: %s", self._shown)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        logging.getLogger("httpx").removeFilter(self._redact)

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        if self._client is None:
            raise RuntimeError("WebhookSink.write before open()")
        outcomes: dict[object, Outcome] = {}
        waiting: Retry | None = None
        for issue in issues:
            if issue.id in outcomes:
                continue  # the same issue twice in a batch: one request
            if waiting is not None:
                outcomes[issue.id] = waiting
                continue
            outcome, wait = self._post(self._client, issue)
            outcomes[issue.id] = outcome
            if wait and isinstance(outcome, Retry):
                waiting = Retry(f"not tried: {outcome.reason}", outcome.delay)
        return [outcomes[issue.id] for issue in issues]

    def _post(self, client: httpx.Client, issue: Issue) -> tuple[Outcome, bool]:
        """The issue's outcome, and whether the rest of the batch should wait too."""
        body = issue.to_bytes()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self._secret),
            IDEMPOTENCY_HEADER: str(issue.id),
        }
        try:
            response = client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Retry(f"{self._shown} did not answer within {self._timeout_s:g} s"), True
        except httpx.TransportError as exc:
            return Retry(f"cannot reach {self._shown}: {type(exc).__name__}"), True
        status = response.status_code
        log.debug("POST %s issue %s: HTTP %d", self._shown, issue.id, status)
        if 200 <= status < 300 or status == 409:
            return WRITTEN, False
        if status in WAIT_STATUSES:
            delay = retry_after(response.headers.get("Retry-After"))
            return Retry(f"{self._shown} answered HTTP {status}", delay), True
        if status >= 500:
            return Retry(f"{self._shown} answered HTTP {status} to issue {issue.id}"), False
        if 300 <= status < 400 or status in SETUP_STATUSES:
            raise WebhookSetupError(
                f"webhook: {self._shown} refuses our requests with HTTP {status} "
                f"{response.reason_phrase}: check [webhook] url and OVERHEARD_WEBHOOK__SECRET"
            )
        excerpt = " ".join(response.text[:EXCERPT].split())
        reason = f"HTTP {status} {response.reason_phrase}: {excerpt}".rstrip(": ")
        log.warning("webhook rejected issue %s (post %s): %s", issue.id, issue.post.id, reason)
        return Rejected(reason), False


class _Redact(logging.Filter):
    """Masks the URL's password and query string, and the secret, in log records."""

    def __init__(self, url: str, secret: str) -> None:
        super().__init__()
        parsed = httpx.URL(url)
        raw_userinfo = parsed.userinfo.decode("ascii", "replace")  # percent-encoded, as logged
        raw_query = parsed.query.decode("ascii", "replace")
        hidden = {secret, parsed.password, raw_userinfo if ":" in raw_userinfo else "", raw_query}
        # Longest first, so a secret that contains another is masked whole.
        self._hidden = sorted((h for h in hidden if h), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        for hidden in self._hidden:
            masked = masked.replace(hidden, "***")
        if masked != message:
            record.msg, record.args = masked, None
        return True


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
