"""The health endpoint: `/healthz`, `/readyz` and `/metrics` on one small HTTP server.

Readiness is a set of named checks that components register as they start
(the bus, each sink, the classifier with its gazetteer), so a component added
later plugs in with one `readiness.add` or `readiness.mark`. A check either
answers when asked (a probe: returns a detail, raises when not ready) or is a
flag its owner sets as things change (a sink marks itself not ready while its
writes are being retried).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from overheard import logs, metrics

log = logging.getLogger(__name__)

#: Returns a short detail when ready; raises (any exception, its text the detail) when not.
Probe = Callable[[], str]


class NotReady(Exception):
    """A flag set to not ready; its text says why."""


@dataclass(frozen=True)
class Verdict:
    name: str
    ok: bool
    detail: str


class Readiness:
    """Named readiness checks; ready when every one of them is."""

    def __init__(self) -> None:
        self._checks: dict[str, Probe] = {}
        self._lock = threading.Lock()

    def add(self, name: str, probe: Probe) -> None:
        with self._lock:
            self._checks[name] = probe

    def mark(self, name: str, ok: bool, detail: str) -> None:
        """Set a flag check: `name` is (not) ready because of `detail`."""

        def flag() -> str:
            if not ok:
                raise NotReady(detail)
            return detail

        self.add(name, flag)

    def remove(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._checks.clear()

    def evaluate(self) -> list[Verdict]:
        with self._lock:
            checks = sorted(self._checks.items())
        verdicts = []
        for name, probe in checks:
            try:
                verdicts.append(Verdict(name, True, logs.mask(probe())))
            except Exception as exc:  # a probe's failure is its answer
                detail = str(exc) if isinstance(exc, NotReady) else f"{type(exc).__name__}: {exc}"
                verdicts.append(Verdict(name, False, logs.mask(detail)))
        return verdicts


#: The process's readiness checks (one daemon a process).
readiness = Readiness()


def cached(probe: Probe, ttl_s: float) -> Probe:
    """`probe`, asked at most once every `ttl_s` (probes that reach a server cost a round trip)."""
    lock = threading.Lock()
    asked_at = float("-inf")
    detail = ""
    error: Exception | None = None

    def answer() -> str:
        nonlocal asked_at, detail, error
        with lock:
            if time.monotonic() - asked_at >= ttl_s:
                try:
                    detail, error = probe(), None
                except Exception as exc:  # remembered, and raised to every asker until renewed
                    error = exc
                asked_at = time.monotonic()
            if error is not None:
                raise error
            return detail

    return answer


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        log.debug("health endpoint: " + format, *args)


StartResponse = Callable[..., Any]


class HealthServer:
    """Serves the endpoints from a background thread until `close`."""

    def __init__(
        self,
        host: str,
        port: int,
        checks: Readiness | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.readiness = checks or readiness
        self._metrics = make_wsgi_app(registry or metrics.registry)
        self._server = make_server(
            host, port, self._app, server_class=_Server, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health endpoint on %s (/healthz, /readyz, /metrics)", self.url)
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            return _reply(start_response, "200 OK", {"alive": True})
        if path == "/readyz":
            verdicts = self.readiness.evaluate()
            ready = all(v.ok for v in verdicts)
            body = {
                "ready": ready,
                "checks": [{"name": v.name, "ok": v.ok, "detail": v.detail} for v in verdicts],
            }
            return _reply(start_response, "200 OK" if ready else "503 Service Unavailable", body)
        return _reply(start_response, "404 Not Found", {"error": f"no such path: {path}"})


def _reply(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
