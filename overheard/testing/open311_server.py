"""An Open311 GeoReport v2 server for tests: real HTTP, the spec's endpoints and errors.

Endpoints (each as ``.json`` and ``.xml``), as in http://wiki.open311.org/GeoReport_v2:

- ``GET discovery.{fmt}``
- ``GET services.{fmt}`` and ``GET services/{service_code}.{fmt}`` (the service definition)
- ``POST requests.{fmt}``: form-encoded; ``api_key``; ``service_code``; a location
  (``lat`` + ``long``, ``address_string`` or ``address_id``); ``attribute[CODE]`` (or
  ``attribute[CODE][]``, repeated, for a multivaluelist); ``description`` (at most 4000
  characters), ``media_url`` and the submitter's fields. A realtime service answers a
  ``service_request_id``, a batch service a ``token``, a blackbox service neither.
- ``GET requests.{fmt}`` with ``service_request_id`` (comma list; overrides every other
  filter), ``service_code``, ``start_date``, ``end_date`` (a range of at most 90 days;
  the last 90 days by default) and ``status``; at most 1000 rows, the newest first.
- ``GET requests/{service_request_id}.{fmt}`` and ``GET tokens/{token}.{fmt}``.
- mySociety's service request updates extension (FixMyStreet's "Open311 FMS - Proposed
  differences to Open311"), which GeoReport v2 lacks: ``POST servicerequestupdates.{fmt}``
  adds an update (a note) to a request: ``api_key``, ``service_request_id``, ``update_id``
  (the client's id of the update), ``status`` (``OPEN`` or ``CLOSED``), ``updated_datetime``,
  ``description``, optionally ``media_url``; it answers the server's ``update_id``, and the
  same client ``update_id`` again gets the same answer without a second update. ``GET
  servicerequestupdates.{fmt}`` lists updates (``start_date``/``end_date`` on
  ``updated_datetime``). Each request keeps its updates under ``"updates"`` in the
  control API's records.

Errors are the spec's error list (``[{"code": 400, "description": "..."}]``, or
``<errors><error>``): 400 for a missing or invalid field or attribute, 403 for a missing
or wrong API key, 404 for an unknown service, request, token or jurisdiction.

The control API (never affected by the switches) lets a test misbehave the server and
inspect it; see ``Control.update`` for the switches::

    GET    /_control                     the switches and counts (requests, received,
                                         fail_left_s, in_flight, max_in_flight)
    POST   /_control                     JSON: change switches, e.g. {"fail_next": [503]}
    GET    /_control/requests            every accepted POST, with its form fields
    DELETE /_control/requests            forget all requests, tokens and the received log
                                         (and max_in_flight)
    POST   /_control/requests/{id}       JSON: set status, status_notes, dates, ...
    GET    /_control/received            every API request received, with the status answered

Run it with ``python -m overheard.testing.open311_server --port 0 --services FILE
--api-key KEY``; the first line it prints is its URL. ``overheard.testing.open311_process``
starts it from a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from overheard.testing.open311_services import (
    SERVICE_TYPES,
    Catalog,
    CatalogError,
    load_definitions,
    load_services,
    parse_definition_option,
)

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
FORMATS = ("json", "xml")
MAX_DESCRIPTION = 4000
MAX_RANGE = timedelta(days=90)
STATUSES = ("open", "closed")
# Fields of a service request as GET requests answers them, in the spec's order.
REQUEST_FIELDS = (
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
)
# What POST /_control/requests/{id} may change.
MUTABLE_FIELDS = frozenset(REQUEST_FIELDS) - {"service_request_id", "service_code"}
# XML: the element name of one item of each list-valued field.
XML_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}
CONTENT_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def w3c(moment: datetime) -> str:
    return moment.isoformat()


def parse_datetime(text: str) -> datetime:
    """A W3C (ISO 8601) datetime; one without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ApiError(Exception):
    """An error answered as the spec's error list."""

    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__(f"{status}: {'; '.join(descriptions)}")
        self.status = status
        self.descriptions = descriptions


# ---------------------------------------------------------------- serialisation


def _xml_value(parent: ET.Element, tag: str, value: Any) -> None:
    element = ET.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, item in value.items():
            _xml_value(element, key, item)
    elif isinstance(value, list):
        item_tag = XML_ITEMS.get(tag, "item")
        for item in value:
            _xml_value(element, item_tag, item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)


def to_xml(root: str, body: Any) -> bytes:
    """The spec's XML: a list under `root` (items named by XML_ITEMS), or a dict as `root`."""
    element = ET.Element(root)
    items = body if isinstance(body, list) else None
    if items is None:
        for key, value in body.items():
            _xml_value(element, key, value)
    else:
        for item in items:
            _xml_value(element, XML_ITEMS[root], item)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="utf-8")


def render(fmt: str, root: str, body: Any, status: int = 200) -> Response:
    data = to_xml(root, body) if fmt == "xml" else json.dumps(body).encode()
    return Response(data, status=status, content_type=CONTENT_TYPES[fmt])


def error_response(fmt: str, status: int, *descriptions: str) -> Response:
    errors = [{"code": status, "description": d} for d in descriptions]
    return render(fmt, "errors", errors, status)


HTML_PAGE = """<!DOCTYPE html>
<html><head><title>{status} {reason}</title></head>
<body><h1>{status} {reason}</h1><p>The server is temporarily unable to service your
request. Please try again later.</p><hr><address>nginx</address></body></html>
"""


# ---------------------------------------------------------------- state


class Store:
    """Requests, tokens and the id counter; optionally kept in a JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.next_id = 1001
        self.records: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            self.next_id = data["next_id"]
            self.records = {r["request"]["service_request_id"]: r for r in data["records"]}
            self.tokens = data["tokens"]

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "next_id": self.next_id,
            "records": list(self.records.values()),
            "tokens": self.tokens,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def new_id(self) -> str:
        service_request_id = str(self.next_id)
        self.next_id += 1
        return service_request_id

    def clear(self) -> None:
        self.records.clear()
        self.tokens.clear()
        self.save()


def _failure(entry: Any) -> dict[str, Any]:
    if isinstance(entry, int) and not isinstance(entry, bool):
        return {"status": entry}
    if isinstance(entry, dict) and set(entry) <= {
        "status",
        "body",
        "retry_after",
        "delay_s",
        "method",
    }:
        if entry.get("body", "json") not in ("json", "xml", "html", "empty"):
            raise ValueError(f"fail_next: unknown body {entry['body']!r}")
        return dict(entry)
    raise ValueError(f"fail_next: not a status or a failure object: {entry!r}")


DEFAULT_SWITCHES: dict[str, Any] = {
    "fail_next": [],
    "fail_for_s": 0.0,
    "fail_status": 503,
    "delay_s": 0.0,
    "tokens": False,
    "token_pending": 0,
    "rate_limit": 0,
    "rate_window_s": 60.0,
    "retry_after": 1,
    "service_types": {},
    "service_notice": "",
    "max_rows": 1000,
}


class Control:
    """The behaviour switches. All of them are in `DEFAULT_SWITCHES`:

    - ``fail_next``: answers for the next API requests, in order; each a status (``503``) or
      ``{"status": 429, "body": "json"|"xml"|"html"|"empty", "retry_after": 5,
      "delay_s": 2, "method": "POST"}``. With ``method``, the entry waits for a request of
      that method. Without ``status``, the request is only delayed, then answered normally.
      A 429 always carries ``Retry-After``; a 503 when ``retry_after`` is given.
    - ``fail_for_s`` / ``fail_status``: an outage. Every API request answers ``fail_status``
      (503 by default; the spec's error list, ``Retry-After`` as for ``fail_next``) until
      ``fail_for_s`` seconds from the moment the switch was set have passed; 0 ends it.
      ``fail_next`` entries wait until the outage is over. ``GET /_control`` shows the
      seconds left as ``fail_left_s``.
    - ``delay_s``: seconds every API request waits before it is handled (to cause client
      timeouts; the request is still handled afterwards, as a real server would).
    - ``tokens``: realtime services answer a token, as batch services do.
    - ``token_pending``: how many lookups of a new token answer no service_request_id yet.
    - ``rate_limit`` / ``rate_window_s``: at most that many API requests per window (0: no
      limit); beyond it, 429 with ``Retry-After`` (the seconds until a slot frees).
    - ``retry_after``: the default ``Retry-After`` of a 429 from ``fail_next``.
    - ``service_types``: ``{service_code: "realtime"|"batch"|"blackbox"}`` overrides.
    - ``service_notice``: the notice POST answers.
    - ``max_rows``: the most rows GET requests answers.

    ``{"reset": true}`` first puts every switch back to its default.
    """

    def __init__(self) -> None:
        self.switches: dict[str, Any] = json.loads(json.dumps(DEFAULT_SWITCHES))
        self.hits: deque[float] = deque()
        #: When the outage of ``fail_for_s`` ends (time.monotonic), if one was set.
        self.fail_until: float | None = None

    def update(self, changes: dict[str, Any]) -> None:
        changes = dict(changes)
        if changes.pop("reset", False):
            self.switches = json.loads(json.dumps(DEFAULT_SWITCHES))
            self.hits.clear()
            self.fail_until = None
        unknown = set(changes) - set(DEFAULT_SWITCHES)
        if unknown:
            raise ValueError(f"unknown switches: {sorted(unknown)}")
        new = dict(self.switches)
        for key, value in changes.items():
            if key == "fail_next":
                new[key] = [_failure(entry) for entry in value]
            elif key in ("delay_s", "rate_window_s", "fail_for_s"):
                new[key] = float(value)
                if new[key] < 0 or not math.isfinite(new[key]):
                    raise ValueError(f"{key}: {value!r}")
            elif key == "fail_status":
                new[key] = int(value)
                if not 100 <= new[key] <= 599:
                    raise ValueError(f"fail_status: {value!r}")
            elif key in ("token_pending", "rate_limit", "retry_after", "max_rows"):
                new[key] = int(value)
            elif key == "tokens":
                new[key] = bool(value)
            elif key == "service_types":
                if not isinstance(value, dict) or set(value.values()) - set(SERVICE_TYPES):
                    raise ValueError(f"service_types: {value!r}")
                new[key] = {str(k): v for k, v in value.items()}
            else:
                new[key] = str(value)
        self.switches = new
        if "fail_for_s" in changes:
            seconds = self.switches["fail_for_s"]
            self.fail_until = time.monotonic() + seconds if seconds > 0 else None

    def outage(self) -> dict[str, Any] | None:
        """The failure every API request answers while ``fail_for_s`` lasts, else None."""
        if self.fail_until is None:
            return None
        if time.monotonic() >= self.fail_until:
            self.fail_until = None
            return None
        return {"status": self.switches["fail_status"]}

    def fail_left_s(self) -> float:
        if self.fail_until is None:
            return 0.0
        return round(max(0.0, self.fail_until - time.monotonic()), 3)

    def take_failure(self, method: str) -> dict[str, Any] | None:
        pending = self.switches["fail_next"]
        for index, entry in enumerate(pending):
            if entry.get("method", method).upper() == method:
                del pending[index]
                return entry
        return None

    def rate_limited(self) -> int | None:
        """Seconds to wait when this request is over the rate limit, else None."""
        limit = self.switches["rate_limit"]
        if limit <= 0:
            return None
        window = self.switches["rate_window_s"]
        moment = time.monotonic()
        while self.hits and self.hits[0] <= moment - window:
            self.hits.popleft()
        if len(self.hits) >= limit:
            return max(1, math.ceil(self.hits[0] + window - moment))
        self.hits.append(moment)
        return None


# ---------------------------------------------------------------- the application


def _form_dict(form: MultiDict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in form:
        values = form.getlist(key)
        out[key] = values if len(values) > 1 or key.endswith("[]") else values[0]
    return out


def _split_format(value: str) -> tuple[str, str]:
    name, dot, fmt = value.rpartition(".")
    if not dot or fmt not in FORMATS or not name:
        raise NotFound()
    return name, fmt


def _comma_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Open311App:
    """The WSGI application. Thread-safe: every handler runs under one lock."""

    def __init__(
        self,
        catalog: Catalog,
        api_key: str,
        *,
        store: Store | None = None,
        jurisdiction: str | None = None,
        control: Control | None = None,
    ) -> None:
        self.catalog = catalog
        self.api_key = api_key
        self.store = store or Store()
        self.jurisdiction = jurisdiction
        self.control = control or Control()
        self.started = now()
        self.received: list[dict[str, Any]] = []
        #: API requests being handled now, and the most at once since the last clear.
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.RLock()
        self.url_map = Map(
            [
                Rule("/_control", endpoint="control", methods=["GET", "POST"]),
                Rule("/_control/requests", endpoint="control_requests", methods=["GET", "DELETE"]),
                Rule(
                    "/_control/requests/<service_request_id>",
                    endpoint="control_request",
                    methods=["GET", "POST"],
                ),
                Rule("/_control/received", endpoint="control_received", methods=["GET"]),
                Rule("/discovery.<fmt>", endpoint="discovery", methods=["GET"]),
                Rule("/services.<fmt>", endpoint="services", methods=["GET"]),
                Rule("/services/<path:name>", endpoint="definition", methods=["GET"]),
                Rule("/requests.<fmt>", endpoint="requests", methods=["GET", "POST"]),
                Rule("/requests/<path:name>", endpoint="request", methods=["GET"]),
                Rule("/tokens/<path:name>", endpoint="token", methods=["GET"]),
                Rule("/servicerequestupdates.<fmt>", endpoint="updates", methods=["GET", "POST"]),
            ],
            strict_slashes=False,
        )

    # -- WSGI

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        fmt = "json"
        if request.path.endswith(".xml"):
            fmt = "xml"
        try:
            endpoint, matched = adapter.match()
        except HTTPException as exc:
            if request.path.startswith("/_control"):
                return exc.get_response()
            return self._api(request, fmt, None, {}, exc)
        values = dict(matched)
        if endpoint.startswith("control"):
            return self._control(request, endpoint, values)
        if values.get("fmt", "json") not in FORMATS:
            return self._api(request, fmt, None, {}, NotFound("Formats are json and xml."))
        fmt = values.pop("fmt", fmt)
        return self._api(request, fmt, endpoint, values, None)

    def _api(
        self,
        request: Request,
        fmt: str,
        endpoint: str | None,
        values: dict[str, Any],
        routing_error: HTTPException | None,
    ) -> Response:
        fmt = fmt if fmt in FORMATS else "json"
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": _form_dict(request.args),
            "form": _form_dict(request.form) if request.method == "POST" else {},
            "received_at": w3c(now()),
            "status": None,
        }
        with self.lock:
            self.received.append(entry)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            wait = self.control.rate_limited()
            failure = None if wait is not None else self.control.outage()
            if wait is None and failure is None:
                failure = self.control.take_failure(request.method)
        try:
            response = self._answer(request, fmt, endpoint, values, routing_error, wait, failure)
        finally:
            with self.lock:
                self.in_flight -= 1
        entry["status"] = response.status_code
        return response

    def _answer(
        self,
        request: Request,
        fmt: str,
        endpoint: str | None,
        values: dict[str, Any],
        routing_error: HTTPException | None,
        wait: int | None,
        failure: dict[str, Any] | None,
    ) -> Response:
        if wait is not None:
            response = error_response(fmt, 429, "Too many requests; retry later.")
            response.headers["Retry-After"] = str(wait)
        else:
            delay = self.control.switches["delay_s"] + float((failure or {}).get("delay_s", 0))
            if delay > 0:
                time.sleep(delay)
            if failure is not None and "status" in failure:
                response = self._failure(fmt, failure)
            elif routing_error is not None:
                status = routing_error.code or 404
                response = error_response(fmt, status, routing_error.description or "")
            else:
                try:
                    with self.lock:
                        assert endpoint is not None
                        response = getattr(self, "api_" + endpoint)(request, fmt, **values)
                except ApiError as exc:
                    response = error_response(fmt, exc.status, *exc.descriptions)
                except HTTPException as exc:
                    response = error_response(fmt, exc.code or 500, exc.description or "")
                except Exception:  # a bug here: say so in the log and answer the spec's 500
                    traceback.print_exc()
                    response = error_response(fmt, 500, "Internal server error.")
        return response

    def _failure(self, fmt: str, failure: dict[str, Any]) -> Response:
        status = int(failure["status"])
        body = failure.get("body", fmt)
        if body == "html":
            reason = HTTPStatus(status).phrase
            response = Response(
                HTML_PAGE.format(status=status, reason=reason),
                status=status,
                content_type="text/html; charset=utf-8",
            )
        elif body == "empty":
            response = Response(b"", status=status, content_type=CONTENT_TYPES[fmt])
        else:
            description = f"Injected failure: HTTP {status}."
            response = error_response(body if body in FORMATS else fmt, status, description)
        retry_after = failure.get("retry_after")
        if status == 429 and retry_after is None:
            retry_after = self.control.switches["retry_after"]
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    # -- the spec's endpoints

    def _check_jurisdiction(self, values: MultiDict[str, str]) -> None:
        given = values.get("jurisdiction_id")
        if given and self.jurisdiction is not None and given != self.jurisdiction:
            raise ApiError(404, f"jurisdiction_id {given!r} not found")

    def api_discovery(self, request: Request, fmt: str) -> Response:
        base = request.host_url.rstrip("/")
        body = {
            "changeset": w3c(self.started),
            "contact": "overheard Open311 test server (overheard.testing.open311_server)",
            "key_service": "API keys are set with --api-key when the server starts.",
            "endpoints": [
                {
                    "specification": SPECIFICATION,
                    "url": base,
                    "changeset": w3c(self.started),
                    "type": "test",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }
        return render(fmt, "discovery", body)

    def _service_view(self, service: dict[str, Any]) -> dict[str, Any]:
        view = dict(service)
        code = str(service["service_code"])
        view["type"] = self.control.switches["service_types"].get(code, service["type"])
        return view

    def api_services(self, request: Request, fmt: str) -> Response:
        self._check_jurisdiction(request.args)
        return render(fmt, "services", [self._service_view(s) for s in self.catalog.services])

    def api_definition(self, request: Request, fmt: str, name: str) -> Response:
        code, fmt = _split_format(name)
        self._check_jurisdiction(request.args)
        definition = self.catalog.definition(code)
        if definition is None:
            raise ApiError(404, f"service_code {code!r} not found")
        return render(fmt, "service_definition", definition)

    def api_requests(self, request: Request, fmt: str) -> Response:
        if request.method == "POST":
            return self._create(request, fmt)
        return self._search(request, fmt)

    def api_request(self, request: Request, fmt: str, name: str) -> Response:
        service_request_id, fmt = _split_format(name)
        self._check_jurisdiction(request.args)
        record = self.store.records.get(service_request_id)
        if record is None:
            raise ApiError(404, f"Service request not found with id {service_request_id}")
        return render(fmt, "service_requests", [record["request"]])

    def api_token(self, request: Request, fmt: str, name: str) -> Response:
        token, fmt = _split_format(name)
        self._check_jurisdiction(request.args)
        entry = self.store.tokens.get(token)
        if entry is None:
            raise ApiError(404, f"Service request not found with token {token}")
        service_request_id = entry["service_request_id"]
        if entry["pending"] > 0:
            entry["pending"] -= 1
            self.store.save()
            service_request_id = None
        return render(
            fmt, "service_requests", [{"service_request_id": service_request_id, "token": token}]
        )

    def api_updates(self, request: Request, fmt: str) -> Response:
        if request.method == "POST":
            return self._add_update(request, fmt)
        self._check_jurisdiction(request.args)
        bounds = {}
        for key in ("start_date", "end_date"):
            if request.args.get(key):
                try:
                    bounds[key] = parse_datetime(request.args[key])
                except ValueError:
                    raise ApiError(400, f"{key} is not a W3C datetime") from None
        updates = [
            update
            for record in self.store.records.values()
            for update in record.get("updates", [])
            if bounds.get("start_date", datetime.min.replace(tzinfo=UTC))
            <= parse_datetime(update["updated_datetime"])
            <= bounds.get("end_date", datetime.max.replace(tzinfo=UTC))
        ]
        shown = [{k: v for k, v in u.items() if k != "client_update_id"} for u in updates]
        return render(fmt, "service_request_updates", shown)

    def _add_update(self, request: Request, fmt: str) -> Response:
        form = request.form
        if form.get("api_key") != self.api_key:
            raise ApiError(403, "Invalid api_key received -- can't proceed with the update.")
        self._check_jurisdiction(form)
        missing = [
            name
            for name in ("service_request_id", "update_id", "status", "updated_datetime")
            if not form.get(name)
        ]
        if missing:
            raise ApiError(400, *(f"{name} is required" for name in missing))
        if form["status"].upper() not in ("OPEN", "CLOSED"):
            raise ApiError(400, f"status must be OPEN or CLOSED, not {form['status']!r}")
        try:
            parse_datetime(form["updated_datetime"])
        except ValueError:
            raise ApiError(400, "updated_datetime is not a W3C datetime") from None
        record = self.store.records.get(form["service_request_id"])
        if record is None:
            raise ApiError(404, f"Service request not found with id {form['service_request_id']}")
        updates = record.setdefault("updates", [])
        for update in updates:
            if update["client_update_id"] == form["update_id"]:
                return render(fmt, "service_request_updates", [{"update_id": update["update_id"]}])
        update = {
            "update_id": f"u{record['request']['service_request_id']}-{len(updates) + 1}",
            "client_update_id": form["update_id"],
            "service_request_id": record["request"]["service_request_id"],
            "status": form["status"].lower(),
            "updated_datetime": form["updated_datetime"],
            "description": form.get("description") or "",
            "media_url": form.get("media_url") or "",
        }
        updates.append(update)
        self.store.save()
        return render(fmt, "service_request_updates", [{"update_id": update["update_id"]}])

    def _search(self, request: Request, fmt: str) -> Response:
        args = request.args
        self._check_jurisdiction(args)
        records = [r["request"] for r in self.store.records.values()]
        ids = _comma_list(args.get("service_request_id"))
        if ids:
            # "This overrides all other arguments."
            found = [self.store.records[i]["request"] for i in ids if i in self.store.records]
            return render(fmt, "service_requests", found)
        errors = []
        codes = _comma_list(args.get("service_code"))
        statuses = _comma_list(args.get("status"))
        for status in statuses:
            if status not in STATUSES:
                errors.append(f"status must be open or closed, not {status!r}")
        bounds: dict[str, datetime] = {}
        for key in ("start_date", "end_date"):
            if args.get(key):
                try:
                    bounds[key] = parse_datetime(args[key])
                except ValueError:
                    errors.append(f"{key} is not a W3C datetime: {args[key]!r}")
        if errors:
            raise ApiError(400, *errors)
        start, end = bounds.get("start_date"), bounds.get("end_date")
        if start is None and end is None:
            end = now()
        if start is None:
            assert end is not None
            start = end - MAX_RANGE
        if end is None:
            end = start + MAX_RANGE
        if end < start:
            raise ApiError(400, "end_date is before start_date")
        if end - start > MAX_RANGE:
            raise ApiError(400, "start_date and end_date may not span more than 90 days")
        selected = [
            r
            for r in records
            if (not codes or str(r["service_code"]) in codes)
            and (not statuses or r["status"] in statuses)
            and start <= parse_datetime(r["requested_datetime"]) <= end
        ]
        selected.sort(
            key=lambda r: (parse_datetime(r["requested_datetime"]), int(r["service_request_id"])),
            reverse=True,
        )
        return render(fmt, "service_requests", selected[: self.control.switches["max_rows"]])

    def _create(self, request: Request, fmt: str) -> Response:
        form = request.form
        key = form.get("api_key") or request.args.get("api_key")
        if not key:
            raise ApiError(403, "api_key is required to create a service request")
        if key != self.api_key:
            raise ApiError(403, "Invalid api_key received -- can't proceed with create_request.")
        self._check_jurisdiction(form)
        code = form.get("service_code", "")
        if not code:
            raise ApiError(400, "service_code is required")
        service = self.catalog.service(code)
        if service is None:
            raise ApiError(404, f"service_code {code!r} not found")
        errors, lat, long = self._location(form)
        description = form.get("description", "")
        if len(description) > MAX_DESCRIPTION:
            errors.append(
                f"description is {len(description)} characters; at most {MAX_DESCRIPTION}"
            )
        media_url = form.get("media_url") or None
        if media_url is not None and (
            urlsplit(media_url).scheme not in ("http", "https") or not urlsplit(media_url).netloc
        ):
            errors.append(f"media_url is not an http(s) URL: {media_url!r}")
        attributes, attribute_errors = self._attributes(code, form)
        errors.extend(attribute_errors)
        if errors:
            raise ApiError(400, *errors)

        stamp = w3c(now())
        service_request_id = self.store.new_id()
        kind = self.control.switches["service_types"].get(code, service["type"])
        if kind == "realtime" and self.control.switches["tokens"]:
            kind = "batch"
        token = uuid.uuid4().hex if kind == "batch" else None
        notice = self.control.switches["service_notice"]
        account_id = form.get("account_id") or None
        self.store.records[service_request_id] = {
            "request": {
                "service_request_id": service_request_id,
                "status": "open",
                "status_notes": None,
                "service_name": service["service_name"],
                "service_code": service["service_code"],
                "description": description or None,
                "agency_responsible": None,
                "service_notice": notice or None,
                "requested_datetime": stamp,
                "updated_datetime": stamp,
                "expected_datetime": None,
                "address": form.get("address_string") or None,
                "address_id": form.get("address_id") or None,
                "zipcode": None,
                "lat": lat,
                "long": long,
                "media_url": media_url,
            },
            "type": kind,
            "token": token,
            "attributes": attributes,
            "form": _form_dict(form),
            "received_at": stamp,
        }
        if token is not None:
            self.store.tokens[token] = {
                "service_request_id": service_request_id,
                "pending": self.control.switches["token_pending"],
            }
        self.store.save()
        answer: dict[str, Any] = {}
        if kind == "realtime":
            answer["service_request_id"] = service_request_id
        elif kind == "batch":
            answer["token"] = token
        answer["service_notice"] = notice
        answer["account_id"] = account_id
        return render(fmt, "service_requests", [answer])

    @staticmethod
    def _location(form: MultiDict[str, str]) -> tuple[list[str], float | None, float | None]:
        errors: list[str] = []
        lat_text, long_text = form.get("lat", ""), form.get("long", "")
        lat = long = None
        if lat_text or long_text:
            try:
                lat, long = float(lat_text), float(long_text)
            except ValueError:
                errors.append("lat and long must both be given, as decimal degrees")
            else:
                if not (-90 <= lat <= 90 and -180 <= long <= 180) or math.isnan(lat + long):
                    errors.append(f"lat/long out of range: {lat_text}, {long_text}")
        elif not form.get("address_string") and not form.get("address_id"):
            errors.append("A location is required: lat and long, address_string or address_id")
        return errors, lat, long

    def _attributes(self, code: str, form: MultiDict[str, str]) -> tuple[dict[str, Any], list[str]]:
        definition = self.catalog.definition(code) or {"attributes": []}
        attributes = {a["code"]: a for a in definition["attributes"] if a["variable"]}
        given: dict[str, list[str]] = {}
        errors: list[str] = []
        for key in form:
            if not key.startswith("attribute["):
                continue
            name = key[len("attribute[") :]
            name = name[: -len("][]")] if name.endswith("][]") else name.rstrip("]")
            given.setdefault(name, []).extend(v for v in form.getlist(key) if v != "")
        for name in given:
            if name not in attributes:
                errors.append(f"attribute[{name}] is not an attribute of service {code}")
        values: dict[str, Any] = {}
        for name, attribute in attributes.items():
            supplied = given.get(name, [])
            if not supplied:
                if attribute["required"]:
                    errors.append(f"attribute[{name}] is required: {attribute['description']}")
                continue
            error = _check_attribute(attribute, supplied)
            if error:
                errors.append(error)
            values[name] = supplied if attribute["datatype"] == "multivaluelist" else supplied[0]
        return values, errors

    # -- the control API

    def _control(self, request: Request, endpoint: str, values: dict[str, Any]) -> Response:
        def answer(body: Any, status: int = 200) -> Response:
            return Response(json.dumps(body), status=status, content_type=CONTENT_TYPES["json"])

        with self.lock:
            try:
                if endpoint == "control":
                    if request.method == "POST":
                        self.control.update(request.get_json(force=True) or {})
                    return answer(
                        {
                            **self.control.switches,
                            "requests": len(self.store.records),
                            "received": len(self.received),
                            "fail_left_s": self.control.fail_left_s(),
                            "in_flight": self.in_flight,
                            "max_in_flight": self.max_in_flight,
                        }
                    )
                if endpoint == "control_requests":
                    if request.method == "DELETE":
                        self.store.clear()
                        self.received.clear()
                        self.max_in_flight = self.in_flight
                    return answer(list(self.store.records.values()))
                if endpoint == "control_received":
                    return answer(self.received)
                record = self.store.records.get(values["service_request_id"])
                if record is None:
                    return answer({"error": "no such service request"}, 404)
                if request.method == "POST":
                    changes = request.get_json(force=True) or {}
                    unknown = set(changes) - MUTABLE_FIELDS
                    if unknown:
                        raise ValueError(f"cannot set {sorted(unknown)}")
                    record["request"].update(changes)
                    if "updated_datetime" not in changes:
                        record["request"]["updated_datetime"] = w3c(now())
                    self.store.save()
                return answer(record)
            except (ValueError, TypeError, AttributeError) as exc:
                return answer({"error": str(exc)}, 400)
            except HTTPException as exc:
                return answer({"error": exc.description}, exc.code or 400)


def _check_attribute(attribute: dict[str, Any], supplied: list[str]) -> str | None:
    name, datatype = attribute["code"], attribute["datatype"]
    keys = {str(v["key"]) for v in attribute["values"]}
    if datatype == "multivaluelist":
        bad = [v for v in supplied if v not in keys]
        if bad:
            return f"attribute[{name}]: {bad} not among the values {sorted(keys)}"
        return None
    if len(supplied) > 1:
        return f"attribute[{name}] takes one value, got {len(supplied)}"
    value = supplied[0]
    if datatype == "singlevaluelist" and value not in keys:
        return f"attribute[{name}]: {value!r} is not among the values {sorted(keys)}"
    if datatype == "number":
        try:
            if not math.isfinite(float(value)):
                raise ValueError(value)
        except ValueError:
            return f"attribute[{name}] must be a number, not {value!r}"
    if datatype == "datetime":
        try:
            parse_datetime(value)
        except ValueError:
            return f"attribute[{name}] must be a W3C datetime, not {value!r}"
    return None


# ---------------------------------------------------------------- running it


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def build_app(
    services: str | Path,
    api_key: str,
    *,
    definitions: Iterable[str | tuple[str | Path, str | None]] = (),
    state: str | Path | None = None,
    jurisdiction: str | None = None,
    switches: dict[str, Any] | None = None,
) -> Open311App:
    """The application for a service list (a file or ``"baltimore"``) and definition files.

    Each definition is ``FILE``, ``CODE=FILE`` or ``(FILE, CODE)``. The built-in Baltimore
    list brings its own definitions.
    """
    loaded = []
    if str(services) == "baltimore":
        loaded.extend(load_definitions("baltimore"))
    for item in definitions:
        path, code = parse_definition_option(item) if isinstance(item, str) else item
        loaded.extend(load_definitions(path, code))
    catalog = Catalog.build(load_services(services), loaded)
    control = Control()
    if switches:
        control.update(switches)
    store = Store(Path(state) if state is not None else None)
    return Open311App(catalog, api_key, store=store, jurisdiction=jurisdiction, control=control)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m overheard.testing.open311_server",
        description="An Open311 GeoReport v2 server for tests. Prints its URL first.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument(
        "--services", required=True, help="a GET services response (.json or .xml), or 'baltimore'"
    )
    parser.add_argument(
        "--definition",
        action="append",
        default=[],
        metavar="[CODE=]FILE",
        help="service definitions (.json or .xml); CODE= attaches one to "
        "another service; repeatable",
    )
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--jurisdiction", help="the only jurisdiction_id accepted")
    parser.add_argument("--state", help="a JSON file that keeps requests across restarts")
    parser.add_argument(
        "--fail-next", default="", help="comma list of statuses for the next API requests"
    )
    parser.add_argument(
        "--fail-for-s", type=float, default=0.0, help="answer --fail-status for this long"
    )
    parser.add_argument("--fail-status", type=int, default=503)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--tokens", action="store_true", help="realtime services answer tokens")
    parser.add_argument("--token-pending", type=int, default=0)
    parser.add_argument("--rate-limit", type=int, default=0)
    parser.add_argument("--rate-window-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    switches = {
        "fail_next": [int(s) for s in _comma_list(args.fail_next)],
        "fail_for_s": args.fail_for_s,
        "fail_status": args.fail_status,
        "delay_s": args.delay_s,
        "tokens": args.tokens,
        "token_pending": args.token_pending,
        "rate_limit": args.rate_limit,
        "rate_window_s": args.rate_window_s,
    }
    try:
        app = build_app(
            args.services,
            args.api_key,
            definitions=args.definition,
            state=args.state,
            jurisdiction=args.jurisdiction,
            switches=switches,
        )
    except (CatalogError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = make_server(args.host, args.port, app, threaded=True, request_handler=_QuietHandler)
    host = args.host if ":" not in args.host else f"[{args.host}]"
    print(f"http://{host}:{server.server_port}", flush=True)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
