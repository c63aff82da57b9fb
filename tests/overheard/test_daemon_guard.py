"""A stage that dies of an unexpected error stops every other stage."""

import threading

from overheard.daemon import guarded


def test_an_unexpected_error_stops_every_stage_and_is_reported(caplog) -> None:
    stop = threading.Event()
    failures: list[str] = []

    def broken() -> None:
        raise PermissionError("the issues table is read-only")

    def patient() -> None:
        assert stop.wait(10), "the other stage was never told to stop"

    others = threading.Thread(target=guarded("classify", patient, stop, failures))
    others.start()
    guarded("sink:sql", broken, stop, failures)()
    others.join(timeout=10)
    assert failures == ["sink:sql"]
    assert stop.is_set()
    assert not others.is_alive()
    assert "stage sink:sql failed" in caplog.text
    assert "read-only" in caplog.text
