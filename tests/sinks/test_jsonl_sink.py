"""The jsonl sink on real files: day files, no duplicates, torn tails, disk failures."""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from overheard.errors import TransientError
from overheard.model import Issue, Post
from overheard.settings import JsonlSettings, Settings
from overheard.sinks.base import WRITTEN, Sink
from overheard.sinks.jsonl import JsonlSink, from_settings
from overheard.sinks.registry import create_sink
from tests.factories import make_issue


def make_issues(count: int, **changes: Any) -> list[Issue]:
    return [make_issue(f"t3_wp{n:03d}", **changes) for n in range(count)]


def posted_on(issue: Issue, when: datetime) -> Issue:
    """The same issue, its post made at `when`."""
    post = Post.model_validate({**issue.post.model_dump(), "created_at": when})
    return issue.model_copy(update={"post": post})


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def ids_in(directory: Path) -> list[str]:
    return [
        json.loads(line)["id"]
        for path in sorted(directory.glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "var" / "jsonl"


@pytest.fixture
def sink(directory: Path) -> Iterator[JsonlSink]:
    opened = JsonlSink(directory)
    opened.open()
    yield opened
    opened.close()


DAY = "2012-07-19.jsonl"  # the day tests.factories' posts were made


def test_is_a_sink_named_jsonl_made_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(jsonl=JsonlSettings(directory=tmp_path / "out"), sinks=["jsonl"])
    made = from_settings(settings)
    assert isinstance(made, Sink)
    assert made.name == "jsonl"
    assert made.directory == tmp_path / "out"
    found = create_sink("jsonl", settings)
    assert isinstance(found.inner, JsonlSink)
    assert repr(found) == f"JsonlSink({str(tmp_path / 'out')!r})"


def test_open_creates_the_directory(directory: Path, sink: JsonlSink) -> None:
    assert directory.is_dir()
    assert sink.files() == []


def test_writes_each_issue_as_one_json_line_in_the_file_of_its_post_day(
    directory: Path, sink: JsonlSink
) -> None:
    issues = make_issues(3)
    assert sink.write(issues) == [WRITTEN] * 3
    assert [p.name for p in sink.files()] == [DAY]
    written = lines(directory / DAY)
    assert all(line.endswith(b"\n") for line in written)
    assert [Issue.from_bytes(line) for line in written] == issues


def test_issues_posted_on_other_days_go_to_their_own_files(
    directory: Path, sink: JsonlSink
) -> None:
    late_evening = posted_on(make_issue("t3_a"), datetime(2026, 11, 2, 23, 59, 59, tzinfo=UTC))
    midnight = posted_on(make_issue("t3_b"), datetime(2026, 11, 3, 0, 0, tzinfo=UTC))
    assert sink.write([midnight, late_evening]) == [WRITTEN, WRITTEN]
    assert [p.name for p in sink.files()] == ["2026-11-02.jsonl", "2026-11-03.jsonl"]
    assert Issue.from_bytes(lines(directory / "2026-11-02.jsonl")[0]) == late_evening
    assert Issue.from_bytes(lines(directory / "2026-11-03.jsonl")[0]) == midnight


def test_a_post_day_is_its_utc_date(directory: Path, sink: JsonlSink) -> None:
    from datetime import timedelta, timezone

    baltimore_evening = datetime(2026, 11, 2, 21, 0, tzinfo=timezone(timedelta(hours=-5)))
    sink.write([posted_on(make_issue(), baltimore_evening)])
    assert [p.name for p in sink.files()] == ["2026-11-03.jsonl"]


def test_redelivered_issues_are_written_once(directory: Path, sink: JsonlSink) -> None:
    first, second, third = make_issues(3)
    assert sink.write([first, second, first]) == [WRITTEN] * 3
    assert sink.write([second, third, first]) == [WRITTEN] * 3
    assert sink.write([]) == []
    assert sorted(ids_in(directory)) == sorted(str(i.id) for i in (first, second, third))


def test_redelivery_after_a_restart_is_written_once(directory: Path) -> None:
    issues = make_issues(4)
    before = JsonlSink(directory)
    before.open()
    before.write(issues[:2])
    before.close()

    after = JsonlSink(directory)
    after.open()
    assert after.write(issues) == [WRITTEN] * 4
    after.close()
    assert sorted(ids_in(directory)) == sorted(str(i.id) for i in issues)


def test_a_torn_last_line_is_truncated_on_open(
    directory: Path, sink: JsonlSink, caplog: pytest.LogCaptureFixture
) -> None:
    issues = make_issues(3)
    sink.write(issues[:2])
    sink.close()
    good = (directory / DAY).read_bytes()
    torn = issues[2].model_dump_json().encode()[:57]  # the crash came mid-line
    with open(directory / DAY, "ab") as file:
        file.write(torn)

    reopened = JsonlSink(directory)
    with caplog.at_level(logging.WARNING, logger="overheard.sinks.jsonl"):
        reopened.open()
    assert (directory / DAY).read_bytes() == good
    assert f"ends with a torn line ({len(torn)} bytes" in caplog.text
    # The torn issue was never acknowledged: the runtime redelivers it, in full.
    assert reopened.write(issues) == [WRITTEN] * 3
    reopened.close()
    assert [Issue.from_bytes(line) for line in lines(directory / DAY)] == issues


def test_a_file_of_only_a_torn_line_is_emptied(directory: Path) -> None:
    directory.mkdir(parents=True)
    (directory / DAY).write_bytes(b'{"schema_version":1,"id":"5b0f')
    sink = JsonlSink(directory)
    sink.open()
    assert (directory / DAY).read_bytes() == b""
    sink.write([make_issue()])
    sink.close()
    assert [Issue.from_bytes(line) for line in lines(directory / DAY)] == [make_issue()]


def test_a_long_torn_line_is_found_across_blocks(directory: Path) -> None:
    directory.mkdir(parents=True)
    whole = make_issue().model_dump_json().encode() + b"\n"
    (directory / DAY).write_bytes(whole + b"x" * 200_000)
    sink = JsonlSink(directory)
    sink.open()
    sink.close()
    assert (directory / DAY).read_bytes() == whole


def test_lines_that_are_not_issues_are_skipped_with_a_warning(
    directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory.mkdir(parents=True)
    issue = make_issue()
    (directory / DAY).write_bytes(
        b"not json\n[1, 2]\n\n" + issue.model_dump_json().encode() + b"\n"
    )
    (directory / "notes.txt").write_text("an analyst's file, not the sink's\n")
    sink = JsonlSink(directory)
    with caplog.at_level(logging.WARNING, logger="overheard.sinks.jsonl"):
        sink.open()
    assert f"{DAY}:1 is not an issue" in caplog.text
    assert f"{DAY}:2 is not an issue" in caplog.text
    assert sink.write([issue]) == [WRITTEN]  # it was already there
    sink.close()
    assert lines(directory / DAY)[3:] == [issue.model_dump_json().encode() + b"\n"]


def test_the_file_is_fsynced_before_written_is_returned(
    directory: Path, sink: JsonlSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    sink.write([make_issue()])
    # The new file's contents, then the directory entry that names it.
    assert synced == [str(directory / DAY), str(directory)]
    synced.clear()
    sink.write([make_issue("t3_other")])
    assert synced == [str(directory / DAY)]


def test_a_full_disk_is_transient(directory: Path, sink: JsonlSink) -> None:
    (directory / DAY).symlink_to("/dev/full")  # every write: ENOSPC, a real one
    with pytest.raises(TransientError, match="No space left on device") as raised:
        sink.write([make_issue()])
    assert isinstance(raised.value.__cause__, OSError)
    assert raised.value.__cause__.errno == errno.ENOSPC


def test_a_failed_write_leaves_the_file_as_it_was(
    directory: Path, sink: JsonlSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = make_issues(3)
    sink.write([first])
    before = (directory / DAY).read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(TransientError):
        sink.write([second, third])
    assert (directory / DAY).read_bytes() == before
    monkeypatch.undo()
    # Nothing was acknowledged, so nothing is remembered as written: the retry writes both.
    assert sink.write([second, third]) == [WRITTEN, WRITTEN]
    assert [Issue.from_bytes(line) for line in lines(directory / DAY)] == [first, second, third]


def test_a_broken_setup_is_raised_as_it_is(directory: Path, sink: JsonlSink) -> None:
    (directory / DAY).mkdir()  # the day file's name is taken by a folder
    with pytest.raises(IsADirectoryError):
        sink.write([make_issue()])


def test_permission_denied_is_a_setup_error_not_transient(
    directory: Path, sink: JsonlSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests run as root, which no file mode stops: the refusal is simulated.
    def refuse(*args: Any, **kwargs: Any) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError):
        sink.write([make_issue()])


def test_a_directory_that_cannot_be_made_is_raised_on_open(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        JsonlSink(tmp_path / "file" / "jsonl").open()


def test_one_sink_writes_a_directory_at_a_time(directory: Path, sink: JsonlSink) -> None:
    other = JsonlSink(directory)
    with pytest.raises(TransientError, match="another jsonl sink is writing"):
        other.open()
    sink.close()
    other.open()
    assert other.write([make_issue()]) == [WRITTEN]
    other.close()


def test_write_before_open_is_a_bug(directory: Path) -> None:
    with pytest.raises(RuntimeError, match="before open"):
        JsonlSink(directory).write([make_issue()])


def test_opening_twice_starts_over(directory: Path, sink: JsonlSink) -> None:
    sink.write([make_issue()])
    sink.open()
    assert sink.write([make_issue()]) == [WRITTEN]
    assert len(lines(directory / DAY)) == 1
