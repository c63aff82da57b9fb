"""Starting, watching and stopping the server processes that the test session runs.

Commands run through util-linux's ``setpriv``, which switches user where needed and gives
servers a parent-death signal.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path


class ServiceUnavailable(RuntimeError):
    """A service cannot be run on this machine; the message says why, for a skip reason."""


class ServiceFailed(RuntimeError):
    """A service was started but did not come up."""


def free_ports(count: int) -> list[int]:
    """Return `count` distinct loopback ports that were free a moment ago.

    The sockets are held open together so the kernel does not hand out one port twice.
    """
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def port_accepts(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    run_as: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server with its output appended to `log_path`, optionally as another user.

    The child is killed when this process dies (setpriv's parent-death signal), so an
    interrupted or killed test run does not leave JVMs or postmasters behind.
    """
    prefix = ["setpriv", "--pdeathsig", "KILL", *_user_switch(run_as), "--"]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [*prefix, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
        )


def stop_process(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0
) -> None:
    """Send `sig`, wait up to `timeout` seconds, then kill."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(log_path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a server's log, for error messages."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until_ready(
    what: str,
    is_ready: Callable[[], bool],
    processes: Sequence[subprocess.Popen[bytes]],
    log_paths: Sequence[Path],
    timeout: float,
) -> None:
    """Poll `is_ready` until it is true; fail early, with the logs, if a process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if any(process.poll() is not None for process in processes):
            raise ServiceFailed(f"{what} exited while starting\n{_tails(log_paths)}")
        if is_ready():
            return
        if time.monotonic() > deadline:
            raise ServiceFailed(f"{what} not ready after {timeout:.0f} s\n{_tails(log_paths)}")
        time.sleep(0.2)


def run_checked(argv: Sequence[str], what: str, run_as: str | None = None) -> None:
    """Run a one-off command (as `run_as` if given); raise with its output if it fails."""
    result = subprocess.run(
        ["setpriv", *_user_switch(run_as), "--", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    if result.returncode != 0:
        raise ServiceFailed(
            f"{what} failed with exit code {result.returncode}:\n{result.stdout}{result.stderr}"
        )


def running_as_root() -> bool:
    return os.geteuid() == 0


def _user_switch(run_as: str | None) -> list[str]:
    if run_as is None:
        return []
    return [f"--reuid={run_as}", f"--regid={run_as}", "--init-groups"]


def _tails(log_paths: Sequence[Path]) -> str:
    return "\n".join(f"--- {path}:\n{log_tail(path)}" for path in log_paths)
