"""Ctrl-C during a replay is never lost, and is acted on where the replay can stop."""

from __future__ import annotations

import gc
import os
import select
import signal
import sys
import threading
import weakref
from collections.abc import Iterator

import pytest

from overheard.interrupt import Interruption


class _Thing:
    pass


def _ctrl_c_inside_a_weakref_callback() -> None:
    """SIGINT handled while the garbage collector runs a weakref callback (as SQLAlchemy's
    registry has): Python cannot raise out of such a callback."""
    thing = _Thing()
    # A cycle, so that only the collector frees it and runs the callback.
    thing.self = thing  # type: ignore[attr-defined]
    keep = weakref.ref(thing, lambda _: os.kill(os.getpid(), signal.SIGINT))
    del thing
    gc.collect()
    assert keep() is None


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own SIGINT handler around the test, whatever pytest installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_sigint")
def test_python_loses_a_ctrl_c_raised_in_a_weakref_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The defect of issue 8, in miniature: "Exception ignored in ...", and the replay went
    # on as if no Ctrl-C had come.
    ignored: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda raised: ignored.append(raised.exc_type))
    _ctrl_c_inside_a_weakref_callback()
    assert ignored == [KeyboardInterrupt]


@pytest.mark.usefixtures("python_sigint")
def test_an_interruption_does_not_lose_it(monkeypatch: pytest.MonkeyPatch) -> None:
    ignored: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda raised: ignored.append(raised.exc_type))
    stop = threading.Event()
    went_on = False
    with pytest.raises(KeyboardInterrupt), Interruption(stop):
        _ctrl_c_inside_a_weakref_callback()
        went_on = True
    # Lost where it was raised, as before; raised again when the block ends.
    assert ignored == [KeyboardInterrupt]
    assert went_on
    assert stop.is_set()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.usefixtures("python_sigint")
def test_before_defer_a_ctrl_c_raises_at_once() -> None:
    reached = False
    with pytest.raises(KeyboardInterrupt), Interruption(threading.Event()):
        os.kill(os.getpid(), signal.SIGINT)
        reached = True
    assert not reached


@pytest.mark.usefixtures("python_sigint")
def test_once_deferred_a_ctrl_c_wakes_a_wait_and_is_raised_by_check() -> None:
    stop = threading.Event()
    with pytest.raises(KeyboardInterrupt), Interruption(stop) as interruption:
        interruption.defer()
        assert select.select([interruption], [], [], 0)[0] == []
        os.kill(os.getpid(), signal.SIGINT)
        assert select.select([interruption], [], [], 5)[0] == [interruption]
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            interruption.check()
        # A second Ctrl-C does not wait for the next check.
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            select.select([], [], [], 5)


@pytest.mark.usefixtures("python_sigint")
def test_an_error_after_the_ctrl_c_is_reported_as_the_interruption() -> None:
    with (
        pytest.raises(KeyboardInterrupt) as raised,
        Interruption(threading.Event()) as interruption,
    ):
        interruption.defer()
        os.kill(os.getpid(), signal.SIGINT)
        raise RuntimeError("a retry given up because the replay was asked to stop")
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_without_a_ctrl_c_it_changes_nothing() -> None:
    before = signal.getsignal(signal.SIGINT)
    with Interruption(threading.Event()) as interruption:
        interruption.defer()
        interruption.check()
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_it_installs_nothing() -> None:
    before = signal.getsignal(signal.SIGINT)
    seen: list[object] = []

    def run() -> None:
        with Interruption(threading.Event()):
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before]
