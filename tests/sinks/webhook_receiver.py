"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 that checks signatures.

It behaves as a well-made receiver should: it verifies `X-Overheard-Signature`
(401 when it does not match), stores each issue once by its `Idempotency-Key`, and
answers 409 to a key it already has. Tests script other answers per request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (to make the client time out).
    delay: float = 0.0


@dataclass
class Receiver:
    url: str
    secret: str
    requests: list[Request] = field(default_factory=list)
    #: Issue JSON by idempotency key: what the receiver holds.
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Decides the answer to a request before the receiver's own rules; None: the rules.
    script: Callable[[Request], Answer | None] = lambda request: None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def answering(self, script: Callable[[Request], Answer | None]) -> Iterator[None]:
        self.script = script
        try:
            yield
        finally:
            self.script = lambda request: None

    def handle(self, request: Request) -> Answer:
        with self.lock:
            self.requests.append(request)
        scripted = self.script(request)
        if scripted is not None:
            return scripted
        expected = (
            "sha256=" + hmac.new(self.secret.encode(), request.body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(request.headers.get("x-overheard-signature", ""), expected):
            return Answer(401, "bad signature")
        key = request.headers.get("idempotency-key", "")
        issue = json.loads(request.body)
        if key != issue["id"]:
            return Answer(400, "the idempotency key is not the issue id")
        with self.lock:
            if key in self.stored:
                return Answer(409, "already have it")
            self.stored[key] = issue
        return Answer(201, json.dumps({"id": key}), {"Content-Type": "application/json"})


@contextmanager
def running_receiver(secret: str) -> Iterator[Receiver]:
    """A receiver on a free port of 127.0.0.1, stopped at the end of the block."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", "0"))
            request = Request(
                self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
            )
            answer = receiver.handle(request)
            if answer.delay:
                time.sleep(answer.delay)
            body = answer.body.encode()
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/issues", secret)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
