"""Run the Open311 test server as a subprocess, from tests.

::

    with Open311Server.start(services="baltimore", api_key="k") as server:
        httpx.post(f"{server.url}/requests.json", data={...})
        server.control(fail_next=[503])
        assert server.requests()[0]["form"]["service_code"] == "TRM-Pothole Repair"

The server listens on a free loopback port; its URL is the first line it prints. Its
stderr goes to a log file (``server.log_path``) that the error shows when it fails to start.
"""

from __future__ import annotations

import atexit
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

import overheard


class Open311ServerError(RuntimeError):
    """The server did not start; the message holds the end of its log."""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Open311Server:
    """A running ``overheard.testing.open311_server`` process; a context manager."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        url: str,
        api_key: str,
        log_path: Path,
        argv: list[str],
        workdir: Path | None,
    ) -> None:
        self.process = process
        self.url = url
        self.api_key = api_key
        self.log_path = log_path
        self.argv = argv
        self._workdir = workdir
        self._client = httpx.Client(base_url=url, timeout=10.0)

    @classmethod
    def start(
        cls,
        services: str | Path = "baltimore",
        api_key: str = "test-api-key",
        *,
        definitions: list[str | Path] | tuple[str | Path, ...] = (),
        state: str | Path | None = None,
        jurisdiction: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        extra_args: list[str] | tuple[str, ...] = (),
        log_path: str | Path | None = None,
        timeout: float = 20.0,
    ) -> Open311Server:
        """Spawn the server and wait until it answers.

        `services` is a services file (JSON or XML) or ``"baltimore"``; each of
        `definitions` is a file or ``CODE=FILE``; `extra_args` are more command-line flags
        (``["--tokens"]``, ``["--fail-next", "503"]``, ...).
        """
        argv = [
            sys.executable,
            "-m",
            "overheard.testing.open311_server",
            "--host",
            host,
            "--port",
            str(port),
            "--services",
            str(services),
            "--api-key",
            api_key,
        ]
        for definition in definitions:
            argv += ["--definition", str(definition)]
        if state is not None:
            argv += ["--state", str(state)]
        if jurisdiction is not None:
            argv += ["--jurisdiction", jurisdiction]
        argv += list(extra_args)
        workdir = None
        if log_path is None:
            workdir = Path(tempfile.mkdtemp(prefix="open311-"))
            log_path = workdir / "server.log"
        return cls._spawn(argv, api_key, Path(log_path), workdir, timeout)

    @classmethod
    def _spawn(
        cls, argv: list[str], api_key: str, log_path: Path, workdir: Path | None, timeout: float
    ) -> Open311Server:
        env = dict(os.environ)
        # So that the child finds this very overheard, installed or not.
        root = str(Path(overheard.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env
            )
        deadline = time.monotonic() + timeout
        try:
            url = cls._first_line(process, deadline)
        except Open311ServerError as exc:
            _stop(process)
            raise Open311ServerError(f"{exc}\n{_tail(log_path)}") from None
        server = cls(process, url, api_key, log_path, argv, workdir)
        atexit.register(server.stop)
        try:
            server._wait_ready(deadline)
        except BaseException:
            server.stop()
            raise
        return server

    @staticmethod
    def _first_line(process: subprocess.Popen[bytes], deadline: float) -> str:
        assert process.stdout is not None
        data = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while b"\n" not in data:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Open311ServerError("the Open311 server printed no URL in time")
                if not selector.select(left):
                    continue
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    raise Open311ServerError(
                        f"the Open311 server exited (status {process.wait()}) before its URL"
                    )
                data += chunk
        return data.split(b"\n", 1)[0].decode().strip()

    def _wait_ready(self, deadline: float) -> None:
        while True:
            try:
                if self._client.get("/_control").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise Open311ServerError(
                    f"the Open311 server at {self.url} did not answer\n{_tail(self.log_path)}"
                )
            time.sleep(0.05)

    # -- the control API

    def control(self, **switches: Any) -> dict[str, Any]:
        """Change switches (see ``open311_server.Control``) and return all of them."""
        response = self._client.post("/_control", json=switches)
        response.raise_for_status()
        return response.json()

    def reset(self) -> dict[str, Any]:
        """Every switch back to its default (the requests stay)."""
        return self.control(reset=True)

    def switches(self) -> dict[str, Any]:
        response = self._client.get("/_control")
        response.raise_for_status()
        return response.json()

    def requests(self) -> list[dict[str, Any]]:
        """The accepted POSTs: ``request`` (as GET answers it), ``form``, ``token``, ..."""
        response = self._client.get("/_control/requests")
        response.raise_for_status()
        return response.json()

    def received(self) -> list[dict[str, Any]]:
        """Every API request received: method, path, query, form, status answered."""
        response = self._client.get("/_control/received")
        response.raise_for_status()
        return response.json()

    def update_request(self, service_request_id: str, **fields: Any) -> dict[str, Any]:
        """Change a request as the city would (``status="closed"``, ``status_notes=...``)."""
        response = self._client.post(f"/_control/requests/{service_request_id}", json=fields)
        response.raise_for_status()
        return response.json()

    def clear(self) -> None:
        """Forget every request, token and received request."""
        self._client.delete("/_control/requests").raise_for_status()

    # -- lifetime

    def stop(self) -> None:
        """SIGTERM, then kill if it does not exit within 10 seconds."""
        self._client.close()
        _stop(self.process)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> Open311Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
