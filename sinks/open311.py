"""The open311 sink: each issue filed once as an Open311 GeoReport v2 service request.

http://wiki.open311.org/GeoReport_v2. `open` discovers the services (``GET services.json``,
and ``GET services/{code}.json`` for those with ``metadata: true``), creates the ledger
(`overheard.sinks.open311_ledger`) and resolves pending tokens. `write` files each issue
with ``POST requests.json`` (form-encoded):

- ``api_key``, ``jurisdiction_id`` (when set), ``service_code``, ``lat``, ``long``;
- ``description``: the post's text, a blank line, then ``overheard issue <id>: <post URL>``
  (preceded by ``reported by @<handle> on <platform>`` only when the profile's ``[privacy]
  handle_to_311`` lets the handle through `overheard.privacy`);
  plain text, at most 4000 characters (the text is cut at a word and ends with "…"; the
  last line always survives, because finding a request again relies on it);
- ``media_url``: the post's URL (when it is http(s));
- ``attribute[CODE]`` only where overheard can fill it honestly. The one attribute it fills
  is the issue id, in a ``string`` or ``text`` attribute whose code, upper-cased and
  without ``_``/``-``/spaces, ends with ``ISSUEID`` or ``EXTERNALID`` (``ISSUE_ID``,
  ``external_id``, ``OVERHEARD_ISSUE_ID``); it is sent whether required or not. Any other
  *required* attribute rejects the issue: "service requires attribute LOCATION_TYPE that
  overheard cannot fill". Optional ones are left out; informational attributes
  (``variable: false``) are never sent.

Checked before any HTTP call, each rejecting the issue: a category with no service code,
a service code the server does not offer, and an issue without a location (GeoReport v2
needs a location for every request; overheard has coordinates or nothing).

Concurrency (``[open311] concurrency``, 4 by default): `write` files the issues of a batch
with up to that many requests in flight, on one shared ``httpx.Client`` (threads of one
executor; every ledger operation takes its own connection from the engine's pool, and
SQLite serialises the writes with ``BEGIN IMMEDIATE``). The outcomes stay in the batch's
order. An issue that comes twice in a batch is handled once and both copies get its
outcome. When the server asks to wait (429, 502-504, no answer), the issues of the batch
not started yet are not tried (`Retry`); those already in flight finish. A setup error or
a ledger that is down stops the issues not started yet and is raised once the others end.

Idempotency, through the ledger: an issue already ``filed``/``token``/``filed_blackbox``
is `Written` without any HTTP call. Otherwise the intent (``posting``) is recorded before
the POST and the result after it. A ``posting`` row found later (the process died between
the POST and the ledger update, or the answer was unclear) is looked up first:
``GET requests.json?service_code=X&start_date=<first intent - 1 min>``, searching the
descriptions for the issue id. Found: recorded, `Written`. Not found: posted again. (A
server that lists at most 1000 requests per query, or does not list a request it has not
processed yet, can make the lookup miss; nothing better is possible without an idempotency
key in the protocol.)

How answers are classified (POST requests.json):

====================================  ======================================================
answer                                outcome
====================================  ======================================================
2xx with ``service_request_id``       `Written`, ledger ``filed``
2xx with ``token`` only               `Written`, ledger ``token`` (resolved later)
2xx, blackbox service, JSON or empty  `Written`, ledger ``filed_blackbox``
2xx with the spec's error list        as the errors' own codes say (rows below)
2xx, JSON but no id and no token      looked up at once: found → `Written`, ``filed``;
(realtime/batch: a protocol           not found → `Rejected` (the ledger keeps ``posting``,
violation)                            so a replayed dead letter looks it up before posting)
2xx, HTML, invalid JSON, or empty     `Retry` (a proxy's page or a crashed handler, not
(realtime/batch)                      the application); ``posting`` stays, so the next try
                                      looks it up before posting again
400 (error list or not), 409, 413,    `Rejected` with the spec's codes and descriptions;
422, any other 4xx                    the intent is dropped (nothing was filed)
404 with the spec's error list        `Rejected` (unknown service); intent dropped
404 without it (HTML, empty)          `Open311SetupError`: the endpoint is wrong
401, 403, 405, 407                    `Open311SetupError` (a `ConfigError`): a wrong key or
                                      URL would reject every issue; the stage stops loudly
429                                   `Retry`, delay = ``Retry-After``; the rest of the
                                      batch waits too (`Retry` without a request)
502, 503, 504, timeout, no connection `Retry` (``Retry-After`` when given); the rest of the
                                      batch waits too; ``posting`` stays (it may be filed)
500 and other 5xx, 408, 425           `Retry` for this issue; the rest are still tried
====================================  ======================================================

Clusters (`overheard.clusters`, the profile's ``[clusters]``; ``[open311] cluster``, on by
default): the city gets one request per problem. `write` assigns each issue of the batch
to its cluster first, in the batch's order, with a `Clusterer` that `open` rebuilds from
the ledger (and each `write` tops up from it for the batch's categories, in case another
process filed them until a rebalance moved their partition here). A cluster's first
report is filed as above. A later one is not filed: it is recorded in the ledger as
attached to that request (its row carries the request's id, or its token), and with
``[open311] updates`` (off by default: GeoReport v2 has no update call) it is also posted
as a note on the first report's request through mySociety's service request updates
extension (``POST servicerequestupdates.json``: ``service_request_id``, ``update_id`` = the
issue id, ``status`` OPEN, ``updated_datetime`` = the post's time, ``description`` as
above, ``media_url``). Later reports wait (`Retry`) while their first report does; when
the first is rejected, its cluster is dissolved and the others are assigned again (the
next becomes the first, and is filed).

A note is owed from the moment the report is attached: the ledger keeps it (row and note
in one transaction, before any POST) until the server takes it, refuses it, or the post
is forgotten (`overheard.sinks.open311_ledger`). When should it be posted?

====================================  ======================================================
first report's request                the later report's note
====================================  ======================================================
``filed`` (has its id)                posted at once; `Written` once the server takes it
                                      (or refuses it); a transient failure is a `Retry`
                                      (429/502-504: the rest of the batch waits too) and
                                      the note stays owed
``token`` (batch, id not known yet)   `Written` at once; posted when the token resolves
``filed_blackbox`` (no id, ever)      never: the report is attached in the ledger only
====================================  ======================================================

Every token round (`open`, the start of each `write`, `resolve_tokens`) resolves the
pending tokens (one ``GET tokens/…`` per token: the rows of a cluster share it, and all
of them become ``filed`` with the id) and then posts every note still owed on a request
that has its id, in the order the reports were posted: those of tokens just resolved,
and those a transient failure or a stopped process left owed. A cluster whose note fails
transiently keeps the rest of its notes for the next round, so their order holds; a
server that is down ends the round. A note the server refuses (a 4xx: say, the request is
closed) is logged and the report stays attached in the ledger only. A redelivered report
finds its row done: no second request, no second note. A note whose answer was lost, or
whose POST the process stopped after, is owed still and posted again with the same
``update_id``, which the extension lets a server recognise; two processes sharing a
ledger may also both post a note owed, with that same ``update_id``.

Lookups (``GET requests.json``, ``GET tokens/…``) and discovery follow the same rules,
except that every failure of discovery in `open` raises `TransientError` (retried by the
runtime) or `Open311SetupError`. A ledger database that is down raises `TransientError`.

The API key is sent in the form body only: it is never in a URL, a log line, a `repr` or
an error message.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from overheard import __version__
from overheard.clusters import Clusterer, Report, cluster_key
from overheard.errors import ConfigError, TransientError
from overheard.model import Issue
from overheard.profile import ClustersProfile, load_profile
from overheard.sinks.base import WRITTEN, BaseSink, Outcome, Rejected, Retry, Written
from overheard.sinks.open311_ledger import (
    DONE,
    FILED,
    FILED_BLACKBOX,
    POSTING,
    TOKEN,
    Ledger,
    LedgerEntry,
    Note,
    OwedNote,
    Placement,
)

if TYPE_CHECKING:
    from overheard.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_LEDGER_URL = "sqlite:///var/open311-ledger.db"
#: How many requests of a batch are in flight at once ([open311] concurrency).
DEFAULT_CONCURRENCY = 4
MAX_DESCRIPTION = 4000
#: How far before the first intent a lookup searches (clocks differ).
LOOKUP_MARGIN = timedelta(minutes=1)
#: GeoReport v2 servers answer at most 90 days per query.
LOOKUP_RANGE = timedelta(days=89)
#: How many pending tokens (and owed notes) a `write` tries to resolve (post) before filing.
TOKENS_PER_WRITE = 50
#: The server is down or asks us to wait: the rest of the batch waits too.
WAIT_STATUSES = frozenset({429, 502, 503, 504})
#: The server refuses the sender (key, URL), not the issue.
SETUP_STATUSES = frozenset({401, 403, 405, 407})
#: Worth another try for this issue alone.
RETRY_STATUSES = frozenset({408, 425})
EXCERPT = 200
_ID_ATTRIBUTE = re.compile(r"(ISSUEID|EXTERNALID)$")
_ID_DATATYPES = frozenset({"string", "text"})


class Open311SetupError(ConfigError):
    """The server refuses every request: a wrong API key, endpoint or jurisdiction."""


def from_settings(settings: Settings) -> Open311Sink:
    """The factory the `overheard.sinks` entry point names: the sink for `[open311]`,
    with the API key from the environment (OVERHEARD_OPEN311__API_KEY)."""
    config = settings.open311
    if not config.endpoint:
        raise ConfigError("open311: set [open311] endpoint (or OVERHEARD_OPEN311__ENDPOINT)")
    if config.api_key is None or not config.api_key.get_secret_value():
        raise ConfigError("open311: set the API key in OVERHEARD_OPEN311__API_KEY")
    return Open311Sink(
        config.endpoint,
        config.api_key,
        config.jurisdiction_id,
        config.ledger_url,
        config.timeout_s,
        concurrency=config.concurrency,
        clusters=load_profile(settings.city).clusters if config.cluster else None,
        updates=config.updates,
    )


@dataclass(frozen=True)
class ServiceType:
    """A service as discovery found it."""

    code: str
    name: str
    #: realtime, batch or blackbox.
    type: str
    #: The definition's attributes (empty without metadata).
    attributes: tuple[dict[str, Any], ...] = ()


class _Wait(Exception):
    """The server is down or asks us to wait: no point trying the rest of the batch."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class _Again(_Wait):
    """This issue should be tried again later; the rest of the batch may go on."""


class _Refused(Exception):
    """The server refused this issue for good."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_issue_id_attribute(attribute: dict[str, Any]) -> bool:
    """Whether overheard fills `attribute` with the issue id (see the module's docstring)."""
    code = re.sub(r"[\s_\-]", "", str(attribute.get("code", ""))).upper()
    return attribute.get("datatype") in _ID_DATATYPES and bool(_ID_ATTRIBUTE.search(code))


def describe_issue(issue: Issue, limit: int = MAX_DESCRIPTION) -> str:
    """The request's description: the post's text, then a line with the issue id and URL.

    At most `limit` characters; a longer text is cut at a word boundary (or mid-word when
    the last 200 characters hold no space) and ends with "…". The last line is never cut.
    """
    footer = f"overheard issue {issue.id}"
    if issue.post.url:
        footer += f": {issue.post.url}"
    if issue.post.author.handle:  # only when the profile's [privacy] handle_to_311 allows it
        footer = f"reported by @{issue.post.author.handle} on {issue.post.platform}\n{footer}"
    text = issue.post.text.replace("\r\n", "\n").replace("\r", "\n").strip()
    room = limit - len(footer) - 2
    if len(text) > room:
        cut = text[: max(0, room - 1)]
        space = max(cut.rfind(" "), cut.rfind("\n"))
        if space >= len(cut) - 200:
            cut = cut[:space]
        text = cut.rstrip() + "…"
    return f"{text}\n\n{footer}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


_NOT_JSON = object()


def _body(response: httpx.Response) -> Any:
    """The JSON body, or `_NOT_JSON` (HTML, empty, broken)."""
    if not response.content.strip():
        return _NOT_JSON
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _errors(body: Any) -> list[tuple[int | None, str]] | None:
    """The spec's error list (``[{"code": 400, "description": "..."}]``), else None."""
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        body = body["errors"]
    if isinstance(body, dict) and "description" in body and "code" in body:
        body = [body]
    if not isinstance(body, list) or not body:
        return None
    errors = []
    for item in body:
        if not isinstance(item, dict) or not {"code", "description"} <= item.keys():
            return None
        if {"service_code", "service_request_id", "token"} & item.keys():
            return None
        try:
            code = int(item.get("code"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            code = None
        errors.append((code, str(item["description"])))
    return errors


def _first(body: Any) -> dict[str, Any] | None:
    """The first service request of an answer (a list, or a single object)."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0]
    if isinstance(body, dict):
        nested = body.get("service_requests") or body.get("service_request")
        if nested is not None:
            return _first(nested)
        return body
    return None


def _is_done(entry: LedgerEntry | None) -> bool:
    return entry is not None and entry.state in DONE


def _is_web_url(value: str | None) -> bool:
    if not value:
        return False
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


class Open311Sink(BaseSink):
    """Files each issue once as a GeoReport v2 service request (see the module's docstring)."""

    name = "open311"

    def __init__(
        self,
        endpoint: str,
        api_key: str | SecretStr,
        jurisdiction_id: str | None = None,
        ledger_url: str = DEFAULT_LEDGER_URL,
        timeout_s: float = 30.0,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        clusters: ClustersProfile | None = None,
        updates: bool = False,
    ) -> None:
        """`clusters`: file one request per cluster (None: each issue on its own);
        `updates`: post later reports of a cluster as notes (the extension)."""
        if concurrency < 1:
            raise ConfigError("open311: concurrency must be at least 1")
        try:
            url = httpx.URL(endpoint)
        except httpx.InvalidURL:
            raise ConfigError("open311: the endpoint is not a URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError("open311: the endpoint must be an http(s) URL")
        if not url.path.endswith("/"):
            url = url.copy_with(path=url.path + "/")
        self._endpoint = url
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._jurisdiction_id = jurisdiction_id or None
        self._timeout_s = timeout_s
        self._ledger = Ledger(ledger_url)
        self._client: httpx.Client | None = None
        self._services: dict[str, ServiceType] | None = None
        self._concurrency = concurrency
        self._executor: ThreadPoolExecutor | None = None
        self._clusterer = Clusterer(clusters) if clusters is not None else None
        self._updates = updates

    def __repr__(self) -> str:
        return (
            f"Open311Sink({self.shown_endpoint!r}, jurisdiction_id={self._jurisdiction_id!r}, "
            f"ledger={self._ledger.shown_url!r}, concurrency={self._concurrency})"
        )

    @property
    def shown_endpoint(self) -> str:
        """The endpoint without credentials or query string."""
        return str(self._endpoint.copy_with(username=None, password=None, query=None))

    @property
    def services(self) -> dict[str, ServiceType]:
        """The services discovered by `open`, by code."""
        return dict(self._services or {})

    # -- lifetime

    def open(self) -> None:
        """Create the ledger, discover the services, resolve pending tokens."""
        self._ledger.create()
        self._recall_clusters(None)
        self._discover()
        self._resolve_tokens(None, quiet=True)
        log.info(
            "open311 sink ready: %s (%d services), ledger %s",
            self.shown_endpoint,
            len(self._services or {}),
            self._ledger.shown_url,
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._client is not None:
            self._client.close()
            self._client = None
        self._ledger.close()

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self._endpoint,
                timeout=self._timeout_s,
                headers={"User-Agent": f"overheard/{__version__}", "Accept": "application/json"},
            )
        return self._client

    def _jurisdiction(self) -> dict[str, str]:
        return {"jurisdiction_id": self._jurisdiction_id} if self._jurisdiction_id else {}

    def _discover(self) -> None:
        try:
            body = self._get_json("services.json", self._jurisdiction(), "discover services")
            if not isinstance(body, list):
                raise _Wait("GET services.json did not answer a list of services")
            services: dict[str, ServiceType] = {}
            for item in body:
                if not isinstance(item, dict) or _text(item.get("service_code")) is None:
                    continue
                code = str(item["service_code"]).strip()
                kind = str(item.get("type") or "realtime").strip().lower()
                attributes: tuple[dict[str, Any], ...] = ()
                if item.get("metadata") in (True, "true", "True"):
                    attributes = self._definition(code)
                services[code] = ServiceType(
                    code, str(item.get("service_name") or code), kind, attributes
                )
        except _Wait as exc:
            raise TransientError(f"open311 {self.shown_endpoint}: {exc.reason}") from None
        except _Refused as exc:
            raise Open311SetupError(
                f"open311 {self.shown_endpoint}: service discovery failed: {exc.reason}"
            ) from None
        self._services = services

    def _definition(self, code: str) -> tuple[dict[str, Any], ...]:
        body = self._get_json(
            f"services/{quote(code, safe='')}.json", self._jurisdiction(), f"describe {code}"
        )
        if not isinstance(body, dict) or not isinstance(body.get("attributes", []), list):
            raise _Wait(f"GET services/{code}.json did not answer a service definition")
        attributes = [a for a in body.get("attributes") or [] if isinstance(a, dict)]
        attributes.sort(key=lambda a: int(a.get("order") or 0))
        return tuple(attributes)

    # -- HTTP

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise _Wait(f"{method} {path} timed out after {self._timeout_s:g}s") from None
        except httpx.TransportError as exc:
            raise _Wait(f"{method} {path} failed: {type(exc).__name__}") from None

    def _scrub(self, text: str) -> str:
        key = self._api_key.get_secret_value()
        # A very short key would mask ordinary words; such a key is hardly secret anyway.
        return text.replace(key, "***") if len(key) >= 6 else text

    def _explain(self, response: httpx.Response) -> str:
        """The status and what the server said: its error list, or the start of the body."""
        errors = _errors(_body(response))
        if errors:
            said = "; ".join(f"{code or '?'} {description}" for code, description in errors)
        else:
            kind = response.headers.get("Content-Type", "").split(";")[0] or "no content type"
            excerpt = " ".join(response.text[:EXCERPT].split())
            said = f"{kind}: {excerpt!r}" if excerpt else "an empty body"
        request = response.request
        return self._scrub(
            f"{request.method} {request.url.path} answered {response.status_code}: {said}"
        )

    def _raise_for_status(self, response: httpx.Response) -> None:
        """Raise for anything but 2xx, by the table in the module's docstring."""
        status = response.status_code
        if 200 <= status < 300:
            return
        reason = self._explain(response)
        if status in SETUP_STATUSES:
            raise Open311SetupError(f"open311 {self.shown_endpoint}: {reason}")
        if status in WAIT_STATUSES:
            raise _Wait(reason, _retry_after(response))
        if status >= 500 or status in RETRY_STATUSES:
            raise _Again(reason, _retry_after(response))
        if status == 404 and _errors(_body(response)) is None:
            raise Open311SetupError(
                f"open311 {self.shown_endpoint}: {reason} (not an Open311 answer: "
                "is the endpoint right?)"
            )
        raise _Refused(reason)

    def _get_json(self, path: str, params: dict[str, str], doing: str) -> Any:
        response = self._send("GET", path, params=params)
        self._raise_for_status(response)
        body = _body(response)
        if body is _NOT_JSON:
            raise _Wait(f"cannot {doing}: {self._explain(response)} (not JSON)")
        errors = _errors(body)
        if errors:
            self._raise_for_embedded(errors, response)
        return body

    def _raise_for_embedded(
        self, errors: list[tuple[int | None, str]], response: httpx.Response
    ) -> None:
        """A 2xx carrying the spec's error list: classify by the errors' own codes."""
        reason = self._explain(response) + " (an error list in a 2xx answer)"
        codes = {code for code, _ in errors}
        if codes & SETUP_STATUSES:
            raise Open311SetupError(f"open311 {self.shown_endpoint}: {reason}")
        if codes & WAIT_STATUSES:
            raise _Wait(reason)
        if any(code is not None and code >= 500 for code in codes) or codes & RETRY_STATUSES:
            raise _Again(reason)
        raise _Refused(reason)

    # -- writing

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        if not issues:
            return []
        if self._services is None:
            self.open()
        self._resolve_tokens(TOKENS_PER_WRITE, quiet=True)
        # An issue that comes twice in the batch is handled once; every copy gets its outcome.
        index: dict[uuid.UUID, int] = {}
        unique: list[Issue] = []
        for issue in issues:
            if issue.id not in index:
                index[issue.id] = len(unique)
                unique.append(issue)
        batch = _Batch()
        if self._clusterer is None:
            handled = self._write_many(unique, batch)
        else:
            by_id = self._write_clustered(unique, batch)
            handled = [by_id[issue.id] for issue in unique]
        outcomes = [handled[index[issue.id]] for issue in issues]
        return [o.retry if isinstance(o, _WaitOutcome) else o for o in outcomes]

    def _write_many(self, issues: list[Issue], batch: _Batch) -> list[Outcome | _WaitOutcome]:
        if self._concurrency == 1 or len(issues) <= 1:
            return [self._write_one(issue, batch) for issue in issues]
        return self._write_concurrently(issues, batch)

    # -- clusters

    def _write_clustered(
        self, issues: list[Issue], batch: _Batch
    ) -> dict[uuid.UUID, Outcome | _WaitOutcome]:
        """Assign clusters in the batch's order, file the first reports (and the issues
        that stand alone), then attach the later reports to their first's request."""
        clusterer = self._clusterer
        assert clusterer is not None
        alone: list[Issue] = []
        later: dict[uuid.UUID, tuple[Issue, uuid.UUID]] = {}
        unplaced: list[Issue] = []
        for issue in issues:
            entry = self._ledger.get(issue.id) if issue.to_311 else None
            if not issue.to_311 or not clusterer.eligible(issue):
                alone.append(issue)  # the ordinary path: not filed, or filed alone
            elif entry is not None and self._note_may_be_owed(entry):
                assert entry.cluster_id is not None
                later[issue.id] = (issue, entry.cluster_id)  # its note may still be owed
            elif _is_done(entry):
                alone.append(issue)  # done: written without any HTTP call
            else:
                unplaced.append(issue)
        # Another process may have filed this category until a rebalance gave it to us.
        self._recall_clusters({cluster_key(issue) for issue in unplaced})
        outcomes: dict[uuid.UUID, Outcome | _WaitOutcome] = {}
        to_file = alone
        while to_file or unplaced:
            firsts = self._place(unplaced, later)
            filing = [*to_file, *firsts]
            filed = self._write_many(filing, batch)
            outcomes.update(zip([i.id for i in filing], filed, strict=True))
            # A first report refused for good, or never filed, takes its cluster with it.
            gone = {
                anchor
                for _, anchor in later.values()
                if (
                    isinstance(outcomes.get(anchor), Rejected)
                    if anchor in outcomes
                    else not _is_done(self._ledger.get(anchor))
                )
            }
            for anchor in gone:
                clusterer.withdraw(anchor)
            unplaced = [issue for issue, anchor in later.values() if anchor in gone]
            for issue in unplaced:
                del later[issue.id]
            to_file = []
        for issue, anchor in later.values():
            first = outcomes.get(anchor)
            if first is not None and not isinstance(first, Written):
                outcomes[issue.id] = Retry(
                    f"waits for the first report of its cluster (issue {anchor})"
                )
            else:
                outcomes[issue.id] = self._attach(issue, anchor, batch)
        return outcomes

    def _recall_clusters(self, keys: set[str] | None) -> None:
        """Add the clusters the ledger holds for `keys` (None: all) that this process does
        not know yet; what it knows stays as it is."""
        if self._clusterer is None or keys == set():
            return
        for report, cluster in self._ledger.recent_reports(self._clusterer.window, keys):
            self._clusterer.add(report, cluster)

    def _place(
        self, issues: list[Issue], later: dict[uuid.UUID, tuple[Issue, uuid.UUID]]
    ) -> list[Issue]:
        """Assign each issue its cluster; returns the first reports, records the others."""
        assert self._clusterer is not None
        firsts = []
        for issue in issues:
            cluster = self._clusterer.assign(issue).cluster
            if cluster == issue.id:
                firsts.append(issue)
            else:
                later[issue.id] = (issue, cluster)
        return firsts

    def _placement(self, issue: Issue) -> Placement | None:
        """How the ledger records a first report (None: clustering is off, or the issue
        stands alone)."""
        if self._clusterer is None or not self._clusterer.eligible(issue):
            return None
        return Placement(issue.id, Report.of(issue))

    def _note_may_be_owed(self, entry: LedgerEntry) -> bool:
        """Whether a later report's row may still owe its note (or was left ``posting``
        by an older version): such a redelivery goes through `_attach` again."""
        if entry.cluster_id in (None, entry.issue_id):
            return False
        return not _is_done(entry) or (self._updates and entry.update_id is None)

    def _attach(self, issue: Issue, anchor: uuid.UUID, batch: _Batch) -> Outcome | _WaitOutcome:
        """A later report of a cluster: a ledger row in its first's state, with the note
        owed when the server takes notes; the note is posted at once when the request has
        its id, otherwise when its token resolves (`_resolve_tokens`)."""
        first = self._ledger.get(anchor)
        assert first is not None and first.state in DONE
        takes_notes = self._updates and first.state in (FILED, TOKEN)
        if not _is_done(self._ledger.get(issue.id)):
            note = self._note_of(issue) if takes_notes else None
            placement = Placement(anchor, Report.of(issue))
            self._ledger.attach(issue.id, first, placement, datetime.now(UTC), note)
            log.info(
                "open311: issue %s is another report of issue %s (request %s)%s",
                issue.id,
                anchor,
                first.service_request_id or first.token or "without an id",
                ", its note owed" if note else "",
            )
        if not takes_notes or first.state != FILED:
            return WRITTEN
        waiting = batch.waiting
        if waiting is not None:
            return Retry(f"not tried: {waiting.reason}", waiting.delay)
        # This report's note, after any of its cluster's still owed: they keep their order.
        for owed in self._ledger.owed_notes(cluster_id=anchor):
            try:
                self._post_note(owed)
            except _Again as exc:
                log.warning("open311: note of issue %s to retry: %s", owed.issue_id, exc.reason)
                return Retry(exc.reason, exc.delay)
            except _Wait as exc:
                log.warning("open311: note of issue %s waits: %s", owed.issue_id, exc.reason)
                batch.wait(exc)
                return _WaitOutcome(exc)
        return WRITTEN

    def _note_of(self, issue: Issue) -> Note:
        """The note a later report becomes, as the ledger keeps it while it is owed."""
        return Note(
            describe_issue(issue),
            str(issue.post.url) if _is_web_url(issue.post.url) else None,
            issue.post.id,
            issue.post.author.key,
        )

    def _post_note(self, owed: OwedNote) -> None:
        """POST servicerequestupdates.json, then record the server's update id (or, for a
        refusal, owe the note no more: the report stays attached in the ledger). A
        transient failure raises `_Again`/`_Wait` and the note stays owed."""
        form = {
            "api_key": self._api_key.get_secret_value(),
            **self._jurisdiction(),
            "service_request_id": owed.service_request_id,
            "update_id": str(owed.issue_id),
            "status": "OPEN",
            "updated_datetime": owed.posted_at.isoformat(),
            "description": owed.description,
        }
        if owed.media_url:
            form["media_url"] = owed.media_url
        try:
            response = self._send_note(form)
            self._raise_for_status(response)
            body = _body(response)
            if body is _NOT_JSON:
                raise _Again(f"{self._explain(response)}: not an answer to an update")
            errors = _errors(body)
            if errors:
                self._raise_for_embedded(errors, response)
        except _Refused as exc:
            log.warning(
                "open311: the note of issue %s was refused (%s); it stays attached to "
                "request %s in the ledger",
                owed.issue_id,
                exc.reason,
                owed.service_request_id,
            )
            self._ledger.drop_note(owed.issue_id)
            return
        answer = _first(body.get("service_request_updates") if isinstance(body, dict) else body)
        update_id = _text((answer or {}).get("update_id"))
        self._ledger.noted(owed.issue_id, update_id, datetime.now(UTC))
        log.info(
            "open311: issue %s posted as note %s on request %s",
            owed.issue_id,
            update_id or "(no id answered)",
            owed.service_request_id,
        )

    def _send_note(self, form: dict[str, str]) -> httpx.Response:
        """POST servicerequestupdates.json. (Tests of a crash right after the POST patch
        this.)"""
        return self._send("POST", "servicerequestupdates.json", data=form)

    def _write_concurrently(
        self, issues: list[Issue], batch: _Batch
    ) -> list[Outcome | _WaitOutcome]:
        """`_write_one` for each issue, up to `concurrency` at once, in the batch's order of
        starting; outcomes in the batch's order. The first exception (a setup error, a ledger
        that is down) stops every issue not yet started and is raised once the others end."""
        self.client  # noqa: B018 - created here, not raced for by the workers
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self._concurrency, thread_name_prefix=f"open311-{id(self):x}"
            )
        futures = [self._executor.submit(self._write_guarded, issue, batch) for issue in issues]
        outcomes: list[Outcome | _WaitOutcome] = []
        failure: BaseException | None = None
        for future in futures:
            try:
                outcomes.append(future.result())
            except BaseException as exc:  # re-raised below, once the others have ended
                batch.abort()
                failure = failure or exc
        if failure is not None:
            raise failure
        return outcomes

    def _write_guarded(self, issue: Issue, batch: _Batch) -> Outcome | _WaitOutcome:
        try:
            return self._write_one(issue, batch)
        except BaseException:
            batch.abort()
            raise

    def _write_one(self, issue: Issue, batch: _Batch) -> Outcome | _WaitOutcome:
        if batch.aborted:
            return Retry("not tried: another issue of the batch failed")
        if not issue.to_311:
            log.info("open311: issue %s not filed: the city profile routes it elsewhere", issue.id)
            return WRITTEN
        entry = self._ledger.get(issue.id)
        if entry is not None and entry.state in DONE:
            return WRITTEN
        try:
            service, form = self._prepare(issue)
        except _Refused as exc:
            log.warning("open311: rejected issue %s: %s", issue.id, exc.reason)
            return Rejected(exc.reason)
        outcome = self._try(issue, batch, entry, service, form)
        if isinstance(outcome, _WaitOutcome):
            batch.wait(outcome.wait)
        return outcome

    def _try(
        self,
        issue: Issue,
        batch: _Batch,
        entry: LedgerEntry | None,
        service: ServiceType,
        form: dict[str, str],
    ) -> Outcome | _WaitOutcome:
        waiting = batch.waiting
        if waiting is not None:
            return Retry(f"not tried: {waiting.reason}", waiting.delay)
        if batch.aborted:
            return Retry("not tried: another issue of the batch failed")
        try:
            if entry is not None and entry.state == POSTING and self._look_up(issue, entry):
                return WRITTEN
            return self._file(issue, service, form)
        except _Again as exc:
            log.warning("open311: issue %s to retry: %s", issue.id, exc.reason)
            return Retry(exc.reason, exc.delay)
        except _Wait as exc:
            log.warning("open311: issue %s waits: %s", issue.id, exc.reason)
            return _WaitOutcome(exc)
        except _Refused as exc:
            log.warning("open311: rejected issue %s: %s", issue.id, exc.reason)
            return Rejected(exc.reason)

    def _prepare(self, issue: Issue) -> tuple[ServiceType, dict[str, str]]:
        """The service and the form, or `_Refused` for what can never be filed."""
        code = issue.category.service_code
        if not code:
            raise _Refused(f"no service code for category {issue.category.name}")
        assert self._services is not None
        service = self._services.get(code)
        if service is None:
            raise _Refused(
                f"service_code {code!r} (category {issue.category.name}) is not offered by "
                f"{self.shown_endpoint}"
            )
        if issue.location is None:
            raise _Refused(
                f"issue has no location, and service {code!r} needs one "
                "(GeoReport v2 requires lat/long or an address for every request)"
            )
        form = {
            "api_key": self._api_key.get_secret_value(),
            **self._jurisdiction(),
            "service_code": service.code,
            "lat": repr(issue.location.lat),
            "long": repr(issue.location.lon),
            "description": describe_issue(issue),
        }
        if _is_web_url(issue.post.url):
            form["media_url"] = str(issue.post.url)
        for attribute in service.attributes:
            if attribute.get("variable", True) in (False, "false"):
                continue
            attribute_code = str(attribute.get("code", ""))
            if is_issue_id_attribute(attribute):
                form[f"attribute[{attribute_code}]"] = str(issue.id)
            elif attribute.get("required") in (True, "true"):
                raise _Refused(
                    f"service {code!r} requires attribute {attribute_code} "
                    "that overheard cannot fill"
                )
        return service, form

    def _file(self, issue: Issue, service: ServiceType, form: dict[str, str]) -> Outcome:
        intent = self._ledger.intend(
            issue.id, service.code, datetime.now(UTC), self._placement(issue)
        )
        response = self._post(form)
        try:
            self._raise_for_status(response)
        except _Refused:
            self._ledger.forget_intent(issue.id)  # a 4xx: nothing was filed
            raise
        except Open311SetupError:
            self._ledger.forget_intent(issue.id)
            raise
        body = _body(response)
        errors = None if body is _NOT_JSON else _errors(body)
        if errors:
            try:
                self._raise_for_embedded(errors, response)
            except _Refused:
                self._ledger.forget_intent(issue.id)
                raise
        answer = None if body is _NOT_JSON else _first(body)
        request_id = _text((answer or {}).get("service_request_id"))
        token = _text((answer or {}).get("token"))
        if request_id is not None:
            self._ledger.record(
                issue.id,
                service.code,
                FILED,
                datetime.now(UTC),
                service_request_id=request_id,
                token=token,
            )
            log.info("open311: issue %s filed as request %s", issue.id, request_id)
            return WRITTEN
        if token is not None:
            self._ledger.record(issue.id, service.code, TOKEN, datetime.now(UTC), token=token)
            log.info("open311: issue %s accepted with token %s", issue.id, token)
            return WRITTEN
        if service.type == "blackbox" and (body is not _NOT_JSON or not response.content.strip()):
            self._ledger.record(issue.id, service.code, FILED_BLACKBOX, datetime.now(UTC))
            log.info("open311: issue %s filed with blackbox service %s", issue.id, service.code)
            return WRITTEN
        if body is _NOT_JSON:
            raise _Again(
                f"{self._explain(response)}: not an Open311 answer; the request may or may not "
                "be filed, so the next try looks it up before posting again"
            )
        # Well-formed, but no id and no token from a realtime/batch service.
        if self._look_up(issue, intent):
            return WRITTEN
        raise _Refused(
            f"{self._explain(response)}: the {service.type} service answered neither "
            "service_request_id nor token, and no request with this issue's id can be found; "
            "it may have been filed: check the city's system before replaying (a replay "
            "looks it up again first)"
        )

    def _post(self, form: dict[str, str]) -> httpx.Response:
        """POST requests.json. (Tests of a crash right after the POST patch this.)"""
        return self._send("POST", "requests.json", data=form)

    def _look_up(self, issue: Issue, entry: LedgerEntry) -> bool:
        """Find a request filed for `issue` before (state ``posting``); record it if found."""
        now = datetime.now(UTC)
        start = max(entry.intent_at - LOOKUP_MARGIN, now - LOOKUP_RANGE)
        params = {
            **self._jurisdiction(),
            "service_code": entry.service_code,
            "start_date": start.replace(microsecond=0).isoformat(),
        }
        try:
            body = self._get_json("requests.json", params, "look requests up")
        except _Refused as exc:
            log.warning(
                "open311: cannot look up issue %s (%s); posting it again", issue.id, exc.reason
            )
            return False
        needle = str(issue.id)
        requests = body if isinstance(body, list) else [body]
        for request in requests:
            if not isinstance(request, dict) or needle not in str(request.get("description")):
                continue
            request_id = _text(request.get("service_request_id"))
            if request_id is None:
                continue
            self._ledger.record(
                issue.id, entry.service_code, FILED, now, service_request_id=request_id
            )
            log.info("open311: issue %s was already filed as request %s", issue.id, request_id)
            return True
        log.info("open311: issue %s is not on the server; posting it", issue.id)
        return False

    # -- tokens

    def resolve_tokens(self, limit: int | None = None) -> int:
        """Ask the server for the ids of requests filed with a token, then post the notes
        owed on requests that have their id; returns how many ledger rows it resolved.
        Tokens without an id yet stay pending; a server that is down stops the round
        (raising `TransientError`)."""
        return self._resolve_tokens(limit, quiet=False)

    def _resolve_tokens(self, limit: int | None, *, quiet: bool) -> int:
        """`resolve_tokens`, at most `limit` tokens and `limit` notes; `quiet`: a server
        that is down ends the round with a warning (and 0) instead."""
        try:
            resolved = self._resolve_pending(limit)
            self._post_owed_notes(limit)
        except _Wait as exc:
            if not quiet:
                raise TransientError(f"open311 {self.shown_endpoint}: {exc.reason}") from None
            log.warning("open311: cannot resolve tokens or post notes now: %s", exc.reason)
            return 0
        return resolved

    def _resolve_pending(self, limit: int | None) -> int:
        resolved = 0
        tried: set[str] = set()  # a cluster's rows share their first report's token
        for entry in self._ledger.pending_tokens(limit):
            assert entry.token is not None
            if entry.token in tried:
                continue
            tried.add(entry.token)
            path = f"tokens/{quote(entry.token, safe='')}.json"
            now = datetime.now(UTC)
            try:
                body = self._get_json(path, self._jurisdiction(), "resolve a token")
            except _Refused as exc:
                log.warning("open311: token of issue %s: %s", entry.issue_id, exc.reason)
                self._ledger.touch(entry.token, now)
                continue
            request_id = _text((_first(body) or {}).get("service_request_id"))
            if request_id is None:
                self._ledger.touch(entry.token, now)
                continue
            changed = self._ledger.resolve_token(entry.token, request_id, now)
            log.info(
                "open311: issue %s is request %s (%d ledger rows)",
                entry.issue_id,
                request_id,
                changed,
            )
            resolved += changed
        return resolved

    def _post_owed_notes(self, limit: int | None) -> None:
        """Post the notes owed on requests that have their id, oldest report first. A
        cluster whose note fails is left for the next round (its later notes too, so that
        they keep their order); a server that is down raises `_Wait`."""
        if not self._updates:
            return
        stalled: set[uuid.UUID] = set()
        for owed in self._ledger.owed_notes(limit):
            if owed.cluster_id in stalled:
                continue
            try:
                self._post_note(owed)
            except _Again as exc:
                log.warning("open311: note of issue %s to retry: %s", owed.issue_id, exc.reason)
                stalled.add(owed.cluster_id)

    # -- reading the ledger

    def forget(self, post_id: str | None = None, author_key: str | None = None) -> int:
        """Record in the ledger that the post (or author) was forgotten, and drop the notes
        still owed for it; nothing else: the city already received the request, and only
        the city can change it. Returns the subjects newly recorded plus the notes dropped
        (0 on a repeat)."""
        if post_id is None and author_key is None:
            raise ValueError("forget needs a post id or an author key")
        subjects = [f"post:{post_id}"] if post_id is not None else []
        subjects += [f"author:{author_key}"] if author_key is not None else []
        now = datetime.now(UTC)
        recorded = sum(self._ledger.record_forget(subject, now) for subject in subjects)
        dropped = self._ledger.forget_notes(post_id=post_id)
        dropped += self._ledger.forget_notes(author_key=author_key)
        return recorded + dropped

    def drop_text_before(self, cutoff: datetime) -> int:
        """Retention: drop the notes still owed for reports posted before `cutoff`, the only
        post text the ledger holds (a note waits for its request's id; one whose token never
        resolves would otherwise keep the text for ever). Such a note is never sent, and the
        report stays attached in the ledger. Returns how many were dropped."""
        dropped = self._ledger.drop_notes_before(cutoff)
        if dropped:
            log.warning(
                "open311: retention dropped %d notes still owed for posts made before %s; "
                "they will not be sent",
                dropped,
                cutoff.isoformat(),
            )
        return dropped

    def ledger_entry(self, issue_id: uuid.UUID) -> LedgerEntry | None:
        """What the ledger knows of an issue (for acknowledgements and tests)."""
        return self._ledger.get(issue_id)


class _Batch:
    """What the issues of one `write` share: the first wait, and whether to stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting: _Wait | None = None
        self.aborted = False

    def wait(self, reason: _Wait) -> None:
        """The server asked us to wait: issues not started yet are not tried."""
        with self._lock:
            if self.waiting is None:
                self.waiting = reason

    def abort(self) -> None:
        self.aborted = True


@dataclass(frozen=True)
class _WaitOutcome:
    """Internal: a Retry that also makes the rest of the batch wait."""

    wait: _Wait

    @property
    def retry(self) -> Retry:
        return Retry(self.wait.reason, self.wait.delay)


__all__ = [
    "FILED",
    "FILED_BLACKBOX",
    "POSTING",
    "TOKEN",
    "LedgerEntry",
    "Open311SetupError",
    "Open311Sink",
    "ServiceType",
    "describe_issue",
    "from_settings",
    "is_issue_id_attribute",
]
