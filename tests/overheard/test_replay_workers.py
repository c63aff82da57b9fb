"""A replay over worker processes gives what the one-process replay gives, whatever the workers."""

from __future__ import annotations

import csv
import gzip
import json
import multiprocessing
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from typer.testing import CliRunner

from overheard import replay_workers
from overheard.cli import app
from overheard.ingest.archive import Position
from overheard.paths import CONFIG_DIR
from overheard.pipeline import Pipeline, replay
from overheard.replay_time import TimeWindow
from overheard.replay_workers import Chunk, ReplayWorkerError
from overheard.report import IssueCollector
from overheard.settings import load_settings
from tests.support.interrupting import children_of, dead_letters_logged, interrupt_replay

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"
COLLECTED_AT = datetime(2026, 11, 23, tzinfo=UTC)
#: Small chunks, so that a replay of the sample has many, and items straddle them.
EVERY = 37


@pytest.fixture(scope="module")
def gazetteer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gazetteer")


@pytest.fixture(scope="module")
def jsonl_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's posts as Pushshift submissions, with malformed lines among them."""
    path = tmp_path_factory.mktemp("archives") / "sample.jsonl"
    with SAMPLE.open(newline="") as rows, path.open("wb") as out:
        for number, row in enumerate(csv.DictReader(rows)):
            record = {
                "id": row["id"],
                "subreddit": "baltimore",
                "title": row["title"],
                "selftext": row["selftext"],
                "author": f"resident{number % 13}",
                "created_utc": float(row["created_utc"]),
                "permalink": row["permalink"],
            }
            out.write(json.dumps(record).encode() + b"\n")
            if number % 97 == 5:
                out.write(b'{"title": "cut short\n')
            if number % 131 == 7:
                out.write(b'{"unknown": "shape"}\n\n')
    return path


def _pipeline(gazetteer_dir: Path, database: Path) -> tuple[Pipeline, IssueCollector]:
    """A pipeline writing to SQLite in small chunks, and a sink that keeps the issues."""
    settings = load_settings(
        flags={
            "database": {"url": f"sqlite:///{database}"},
            "sinks": ["sql"],
            "geo": {"gazetteer_dir": str(gazetteer_dir)},
            "ingest": {"checkpoint_every": EVERY},
            "bus": {"batch_size": EVERY},
        }
    )
    pipeline = Pipeline.build(settings)
    return pipeline, IssueCollector(pipeline.profile.clusters)


def _rows(database: Path) -> list[dict[str, Any]]:
    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text("SELECT * FROM issues ORDER BY id")).mappings()
        table = [{k: v for k, v in row.items() if k != "written_at"} for row in rows]
    engine.dispose()
    return table


def _replay(
    archives: list[Path], gazetteer_dir: Path, database: Path, workers: int, **options: Any
) -> dict[str, Any]:
    """The summary, the issues a sink got (in order) and the SQL rows of one replay."""
    pipeline, collector = _pipeline(gazetteer_dir, database)
    positions: list[int] = []
    summary = replay(
        pipeline,
        archives,
        collected_at=COLLECTED_AT,
        extra_sinks=[collector],
        on_progress=lambda position: positions.append(position.offset),
        workers=workers,
        **options,
    )
    assert positions, "progress was never reported"
    return {
        "summary": summary.as_dict(),
        "issues": [issue.model_dump(mode="json") for issue in collector.issues],
        "rows": _rows(database),
    }


def _no_workers_left() -> bool:
    return not multiprocessing.active_children()


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_what_one_process_gives(
    tmp_path: Path, gazetteer_dir: Path, jsonl_sample: Path, workers: int
) -> None:
    archives = [jsonl_sample, SAMPLE]
    serial = _replay(archives, gazetteer_dir, tmp_path / "serial.db", 1)
    parallel = _replay(archives, gazetteer_dir, tmp_path / "parallel.db", workers)
    summary = serial["summary"]
    assert summary["posts_read"] == 2000
    assert summary["issues"] > 20
    assert summary["deadletters"] == {"ingest:MalformedMessage": 11, "ingest:UnknownShape": 8}
    assert parallel == serial
    assert _no_workers_left()


def test_since_until_and_gzip_with_workers(
    tmp_path: Path, gazetteer_dir: Path, jsonl_sample: Path
) -> None:
    packed = tmp_path / "sample.jsonl.gz"
    packed.write_bytes(gzip.compress(jsonl_sample.read_bytes()))
    window = TimeWindow(datetime(2013, 3, 1, tzinfo=UTC), datetime(2013, 7, 1, tzinfo=UTC))
    serial = _replay([jsonl_sample], gazetteer_dir, tmp_path / "s.db", 1, window=window)
    parallel = _replay([packed], gazetteer_dir, tmp_path / "p.db", 2, window=window)
    assert 0 < serial["summary"]["outside_time_range"] < 1000
    assert serial["summary"]["issues"] > 0
    # The same posts, read from a file of another name: only the provenance differs.
    for result in (serial, parallel):
        for issue in result["issues"]:
            provenance = issue["post"]["provenance"]
            provenance["source"] = provenance["source"].rsplit(":", 1)[1]
        result.pop("rows")
    assert parallel == serial


def test_the_cli_replays_with_workers(tmp_path: Path, gazetteer_dir: Path) -> None:
    runner = CliRunner(env={"OVERHEARD_GEO__GAZETTEER_DIR": str(gazetteer_dir)})
    summaries = []
    for workers in ("1", "2"):
        database = f"sqlite:///{tmp_path}/{workers}.db"
        result = runner.invoke(
            app, ["replay", str(SAMPLE), "--db", database, "--workers", workers, "--json"]
        )
        assert result.exit_code == 0, result.output
        summaries.append(json.loads(result.stdout))
    assert summaries[0] == summaries[1]
    assert summaries[0]["posts_read"] == 1000


def _dies_at_chunk_2(classifier: Any, number: int, *rest: Any) -> Chunk:
    if number == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return _classify_chunk(classifier, number, *rest)


def _fails_at_chunk_3(classifier: Any, number: int, *rest: Any) -> Chunk:
    if number == 3:
        raise RuntimeError("the classifier broke on chunk 3")
    return _classify_chunk(classifier, number, *rest)


_classify_chunk = replay_workers.classify_chunk


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        (_dies_at_chunk_2, "replay worker 0 .* died with exit code -9"),
        (_fails_at_chunk_3, "(?s)replay worker 1 failed.*the classifier broke on chunk 3"),
    ],
)
def test_a_worker_that_dies_or_fails_ends_the_replay_with_an_error(
    tmp_path: Path,
    gazetteer_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    broken: Any,
    said: str,
) -> None:
    # The workers are forked: they run the patched function.
    monkeypatch.setattr(replay_workers, "classify_chunk", broken)
    with pytest.raises(ReplayWorkerError, match=said):
        _replay([SAMPLE], gazetteer_dir, tmp_path / "o.db", 2)
    assert _no_workers_left()


def _interrupted_replay(
    archives: list[Path], gazetteer_dir: Path, database: Path, workers: int, after: int
) -> dict[str, Any]:
    """What the sinks hold when a Ctrl-C comes as the replay reports its `after`-th chunk
    (SIGINT to this process: the replay's handler takes it, as in `overheard replay`)."""
    pipeline, collector = _pipeline(gazetteer_dir, database)
    reported: list[int] = []

    def progress(position: Position) -> None:
        reported.append(position.offset)
        if len(reported) == after:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        replay(
            pipeline,
            archives,
            collected_at=COLLECTED_AT,
            extra_sinks=[collector],
            on_progress=progress,
            workers=workers,
        )
    assert _no_workers_left()
    # Nothing is delivered after the chunk in hand when the Ctrl-C came.
    assert len(reported) == after
    return {
        "issues": [issue.model_dump(mode="json") for issue in collector.issues],
        "rows": _rows(database),
    }


def test_ctrl_c_mid_replay_leaves_the_sinks_whole(
    tmp_path: Path, gazetteer_dir: Path, jsonl_sample: Path
) -> None:
    # One archive: the sample's posts twice would give issues of the same ids.
    archives = [jsonl_sample]
    whole = _replay(archives, gazetteer_dir, tmp_path / "whole.db", 1)
    cuts = [
        _interrupted_replay(archives, gazetteer_dir, tmp_path / f"cut{n}.db", n, after=12)
        for n in (1, 2)
    ]
    # One process or two workers: the same chunks delivered before the Ctrl-C, none after.
    assert cuts[0] == cuts[1]
    issues = {issue["id"]: issue for issue in cuts[0]["issues"]}
    assert 0 < len(issues) < len(whole["issues"])
    # Every sink got them whole: the SQL rows and the issues are those of the full replay.
    assert list(issues.values()) == [i for i in whole["issues"] if i["id"] in issues]
    stored = {uuid.UUID(issue).hex for issue in issues}
    assert cuts[0]["rows"] == [row for row in whole["rows"] if row["id"] in stored]
    assert len(cuts[0]["rows"]) == len(issues)


@pytest.fixture(scope="module")
def long_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200,000 comments, with a malformed line (a dead letter, logged) every 50."""
    path = tmp_path_factory.mktemp("long") / "long.jsonl"
    with path.open("w") as out:
        for number in range(200_000):
            record = {
                "id": f"c{number:x}",
                "subreddit": "baltimore",
                "link_id": "t3_a",
                "parent_id": "t3_a",
                "body": f"post {number} about the game",
                "created_utc": 1.4e9 + number,
            }
            out.write(json.dumps(record) + "\n")
            if number % 50 == 0:
                out.write('{"body": "cut short\n')
    return path


@pytest.mark.parametrize(
    ("workers", "moment"), [("2", "start-up"), ("2", "mid-run"), ("1", "mid-run")]
)
def test_ctrl_c_ends_the_replay_and_its_workers(
    tmp_path: Path, gazetteer_dir: Path, long_archive: Path, workers: str, moment: str
) -> None:
    """The `overheard replay` a user interrupts: exit 130, one line said, no worker left.

    start-up: as soon as the workers are there (the sinks are being opened); mid-run:
    once the main process has merged a thousand posts, long before the end."""
    output = tmp_path / "stdout.txt"
    workers_seen = interrupt_replay(
        [str(long_archive), "--workers", workers, "--db", f"sqlite:///{tmp_path}/o.db"],
        {"OVERHEARD_GEO__GAZETTEER_DIR": str(gazetteer_dir)},
        tmp_path / "stderr.txt",
        (lambda process: len(children_of(process.pid)) == 2)
        if moment == "start-up"
        else (lambda _process: dead_letters_logged(tmp_path / "stderr.txt") >= 20),
        stdout=output,
    )
    assert "posts read" not in output.read_text()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers_seen):
        assert time.monotonic() < deadline, "a worker outlived the replay"
        time.sleep(0.1)
