"""`overheard run` as a real process for tests: its JSON log, its health endpoint, its commits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError


class Daemon:
    """One `overheard run` process with JSON logs, its stderr in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "overheard", "run", "--log-format", "json", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )

    def events(self) -> list[dict[str, object]]:
        lines = self.log.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def logged(self, text: str) -> bool:
        return any(text in str(event["msg"]) for event in self.events())

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=120)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for(
    condition: Callable[[], bool], what: str, daemon: Daemon, timeout_s: float = 180
) -> None:
    """Poll `condition`; fail with the daemon's log if it exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if daemon.process.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"waiting for {what}\n{daemon.tail()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_environment(bootstrap: str, prefix: str, tmp_path: Path) -> dict[str, str]:
    """Settings for a fast daemon: small batches, short sessions, no gazetteer or models."""
    return {
        **os.environ,
        "OVERHEARD_BUS__BOOTSTRAP_SERVERS": bootstrap,
        "OVERHEARD_BUS__TOPIC_PREFIX": prefix,
        "OVERHEARD_BUS__PARTITIONS": "2",
        "OVERHEARD_BUS__BATCH_SIZE": "5",
        "OVERHEARD_BUS__SESSION_TIMEOUT_MS": "6000",
        "OVERHEARD_GEO__ENABLED": "false",
        # The vocabulary decides alone: no text models to train or load at start-up.
        "OVERHEARD_MODELS__ENABLED": "false",
        "OVERHEARD_INGEST__CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "OVERHEARD_DAEMON__SHUTDOWN_GRACE_S": "60",
        # Without a SQL sink the audit log would go to the checkout's var/audit.db.
        "OVERHEARD_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}",
    }


def committed(admin: KafkaAdminClient, group: str) -> int:
    """The sum of a consumer group's committed offsets (0 before its first commit)."""
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except KafkaError:  # no coordinator yet: nothing committed
        return 0
    return sum(max(0, meta.offset) for meta in offsets.values())


def end_offset(bootstrap: str, topic: str) -> int:
    """How many messages were ever written to `topic`, over its partitions."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        return sum(reader.end_offsets(partitions).values())
    finally:
        reader.close()


def get(url: str) -> httpx.Response | None:
    """A GET to the health endpoint, or None while it does not answer."""
    try:
        return httpx.get(url, timeout=10)
    except httpx.TransportError:
        return None


def metric(text: str, sample: str) -> float:
    """A sample's value in the Prometheus text format, 0 when absent."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


class TcpProxy:
    """Forwards a local port to a server; `stop` is the server becoming unreachable."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def stop(self) -> None:
        assert self._listener is not None
        for each in [self._listener, *self._open]:
            with contextlib.suppress(OSError):  # already disconnected
                each.shutdown(socket.SHUT_RDWR)
            each.close()
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            return
