"""`overheard replay` end to end on the shipped sample, in one process, to several sinks."""

import csv
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from kafka import KafkaAdminClient
from typer.testing import CliRunner

from overheard.cli import app
from overheard.ingest.archive import Position
from overheard.paths import CONFIG_DIR
from overheard.pipeline import Pipeline, replay
from overheard.replay_time import Pacer, TimeWindow, parse_instant
from overheard.settings import load_settings
from tests.support.interrupting import dead_letters_logged, interrupt_replay

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"


def test_no_encoder_leaves_the_decision_to_the_cheaper_models(tmp_path: Path) -> None:
    """`--no-encoder` is `[models] encoder = false` for one replay: no issue names the
    encoder among the models that decided (the linear heads where they can be trained,
    else the vocabulary)."""
    database = tmp_path / "overheard.db"
    result = CliRunner().invoke(
        app,
        ["replay", str(SAMPLE), "--db", f"sqlite:///{database}", "--json", "--no-encoder"],
        env={"OVERHEARD_GEO__ENABLED": "false"},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["issues"] > 0
    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        versions = set(
            connection.scalars(sqlalchemy.text("SELECT DISTINCT classifier_version FROM issues"))
        )
    engine.dispose()
    assert len(versions) == 1
    assert "minilm" not in versions.pop().lower()


def test_replay_writes_every_issue_to_every_sink_and_sums_up(tmp_path: Path) -> None:
    database = tmp_path / "overheard.db"
    result = CliRunner().invoke(
        app,
        [
            "replay",
            str(SAMPLE),
            "--db",
            f"sqlite:///{database}",
            "--sink",
            "sql",
            "--sink",
            "jsonl",
            "--json",
        ],
        env={
            "OVERHEARD_JSONL__DIRECTORY": str(tmp_path / "jsonl"),
            "OVERHEARD_GEO__GAZETTEER_DIR": str(tmp_path / "gazetteer"),
        },
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["posts_read"] == 1000
    assert (
        summary["stopped_by_prefilter"]
        + sum(
            count for outcome, count in summary["outcomes"].items() if outcome != "stopped_by_scan"
        )
        == 1000
    )
    issues = summary["issues"]
    assert issues > 0
    assert summary["issues_written"] == {"jsonl": issues, "sql": issues}
    assert summary["deadletters"] == {}
    assert sum(summary["issues_by_precision"].values()) == issues

    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.scalar(sqlalchemy.text("SELECT count(*) FROM issues"))
    engine.dispose()
    lines = sum(len(p.read_text().splitlines()) for p in (tmp_path / "jsonl").glob("*.jsonl"))
    assert rows == lines == issues


def test_replaying_twice_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/overheard.db"
    runner = CliRunner(env={"OVERHEARD_GEO__GAZETTEER_DIR": str(tmp_path / "gazetteer")})
    first = runner.invoke(app, ["replay", str(SAMPLE), "--db", url, "--json"])
    second = runner.invoke(app, ["replay", str(SAMPLE), "--db", url, "--json"])
    assert first.exit_code == second.exit_code == 0
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        rows = connection.scalar(sqlalchemy.text("SELECT count(*) FROM issues"))
    engine.dispose()
    assert rows == json.loads(first.stdout)["issues"] == json.loads(second.stdout)["issues"]


def _created_between(since: datetime, until: datetime) -> int:
    """Posts of the sample created in [since, until), read from its CSV independently."""
    with SAMPLE.open(newline="") as handle:
        times = [
            datetime.fromtimestamp(float(row["created_utc"]), UTC) for row in csv.DictReader(handle)
        ]
    return sum(since <= moment < until for moment in times)


def test_since_and_until_keep_the_posts_created_in_between(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "replay",
            str(SAMPLE),
            "--db",
            f"sqlite:///{tmp_path}/overheard.db",
            "--since",
            "2013-05-01",
            "--until",
            "2013-07-01T00:00:00Z",
            "--json",
        ],
        env={"OVERHEARD_GEO__GAZETTEER_DIR": str(tmp_path / "gazetteer")},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    kept = _created_between(datetime(2013, 5, 1, tzinfo=UTC), datetime(2013, 7, 1, tzinfo=UTC))
    # The sample is not sorted by time: posts of May and June are spread through it.
    assert 0 < kept < 1000
    assert summary["posts_read"] == sum(summary["outcomes"].values()) == kept
    assert summary["outside_time_range"] == 1000 - kept


def test_a_bad_time_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["replay", str(SAMPLE), "--db", f"sqlite:///{tmp_path}/o.db", "--since", "last May"],
        env={"OVERHEARD_GEO__GAZETTEER_DIR": str(tmp_path / "gazetteer")},
    )
    assert result.exit_code == 2
    assert "not an ISO date or datetime" in result.output
    assert not (tmp_path / "o.db").exists()


def test_a_date_means_its_midnight_utc_and_until_is_left_out() -> None:
    window = TimeWindow(parse_instant("2013-05-01"), parse_instant("2013-05-02T12:00+02:00"))
    assert window.since == datetime(2013, 5, 1, tzinfo=UTC)
    assert window.until == datetime(2013, 5, 2, 10, tzinfo=UTC)
    assert datetime(2013, 5, 1, tzinfo=UTC) in window
    assert datetime(2013, 4, 30, 23, 59, 59, tzinfo=UTC) not in window
    assert datetime(2013, 5, 2, 10, tzinfo=UTC) not in window
    assert parse_instant("2013-05-01T08:30") == datetime(2013, 5, 1, 8, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="must come before"):
        TimeWindow(parse_instant("2013-05-02"), parse_instant("2013-05-01"))


class FakeClock:
    """A monotonic clock that only sleeping moves, and the sleeps it was asked for."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_the_pacer_waits_post_time_over_speed_never_backwards_and_caps_gaps() -> None:
    clock = FakeClock()
    delivered: list[float] = []
    pacer = Pacer(
        10, max_gap_s=60, clock=clock, sleep=clock.sleep, before_wait=lambda: delivered.append(1)
    )
    start = datetime(2013, 5, 1, tzinfo=UTC)
    for offset_s in (0, 5, 3, 25, 25, 3600, 3610):
        pacer.pace(start + timedelta(seconds=offset_s))
    # 5 s of post time at 10x is 0.5 s; 3 s is older than the newest: no wait; 25 s is
    # 2 s after the origin; the hour without posts is capped at a minute, after which
    # the clock restarts from that post: 10 s later is due 1 s later.
    assert clock.sleeps == [0.5, 2.0, 60.0, 1.0]
    # What was sent so far is delivered before each wait.
    assert len(delivered) == 4


def test_the_pacer_counts_the_time_work_took() -> None:
    clock = FakeClock()
    pacer = Pacer(2, clock=clock, sleep=clock.sleep)
    start = datetime(2013, 5, 1, tzinfo=UTC)
    pacer.pace(start)
    clock.now += 0.75  # classifying took 0.75 s of the 1 s the next post is due in
    pacer.pace(start + timedelta(seconds=2))
    clock.now += 3.0  # slower than real time: the next post is overdue, no sleep
    pacer.pace(start + timedelta(seconds=4))
    assert clock.sleeps == [0.25]


def _pushshift_archive(path: Path, seconds_apart: float, count: int) -> Path:
    start = datetime(2013, 5, 1, tzinfo=UTC).timestamp()
    lines = [
        json.dumps(
            {
                "id": f"c{number}",
                "link_id": "t3_pace",
                "parent_id": "t3_pace",
                "subreddit": "baltimore",
                "author": "someone",
                "body": f"Comment number {number} about the Orioles game.",
                "created_utc": start + number * seconds_apart,
            }
        )
        for number in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_speed_replays_at_a_multiple_of_real_time(tmp_path: Path) -> None:
    archive = _pushshift_archive(tmp_path / "paced.jsonl", seconds_apart=1.0, count=4)
    settings = load_settings(
        flags={
            "database": {"url": f"sqlite:///{tmp_path}/overheard.db"},
            "geo": {"enabled": False},
            "models": {"enabled": False},
        }
    )
    pipeline = Pipeline.build(settings)
    classified_before_each_wait: list[int] = []

    def progress(_position: Position) -> None:
        classified_before_each_wait.append(sum(pipeline.summary.outcomes.values()))

    started = time.monotonic()
    summary = replay(pipeline, [archive], speed=10.0, on_progress=progress)
    took = time.monotonic() - started
    assert summary.posts_read == 4
    # 3 s of posts at 10x: at least 0.3 s, give or take the clock's grain.
    assert took >= 0.29
    # Each post was classified, and progress shown, before the replay waited for the next.
    assert classified_before_each_wait[:3] == [1, 2, 3]


def _kafka_env(tmp_path: Path, bootstrap: str, prefix: str) -> dict[str, str]:
    return {
        "OVERHEARD_GEO__GAZETTEER_DIR": str(tmp_path / "gazetteer"),
        "OVERHEARD_BUS__BOOTSTRAP_SERVERS": bootstrap,
        "OVERHEARD_BUS__TOPIC_PREFIX": prefix.rstrip("."),
        "OVERHEARD_BUS__PARTITIONS": "2",
        "OVERHEARD_BUS__SESSION_TIMEOUT_MS": "6000",
    }


def _replay_json(env: dict[str, str], *args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["replay", *args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def test_replay_through_kafka_sums_up_as_the_in_process_bus(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    env = _kafka_env(tmp_path, kafka_bootstrap, kafka_topic_prefix)
    runs = {
        bus: _replay_json(
            env,
            *(str(SAMPLE), "--db", f"sqlite:///{tmp_path}/{bus}.db", "--bus", bus),
            *("--report", str(tmp_path / f"report-{bus}")),
        )
        for bus in ("memory", "kafka")
    }
    in_process = runs["memory"]
    assert runs["kafka"] == in_process
    # The report lists issues by post time and groups them per category, as the issues
    # topic keeps them in order: whatever partition each came through, the same bytes.
    for name in ("summary.json", "issues.geojson", "report.html", "map.png"):
        memory, kafka = (tmp_path / f"report-{bus}" / name for bus in ("memory", "kafka"))
        assert memory.read_bytes() == kafka.read_bytes(), name
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/kafka.db")
    with engine.connect() as connection:
        rows = connection.scalar(sqlalchemy.text("SELECT count(*) FROM issues"))
    engine.dispose()
    assert rows == in_process["issues"]
    # The replay's own topics are gone once it is over.
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert not [t for t in admin.list_topics() if t.startswith(kafka_topic_prefix)]
    finally:
        admin.close()


def test_ctrl_c_ends_a_replay_through_kafka_and_deletes_its_topics(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    """The stages run as threads on Kafka: a Ctrl-C mid-run still ends the command with
    exit 130 and one line, and the replay's topics are deleted as after a whole replay."""
    archive = tmp_path / "long.jsonl"
    lines = _pushshift_archive(archive, seconds_apart=1.0, count=50_000).read_text()
    # A malformed line every 50: dead letters logged as the feed reads, to know it runs.
    archive.write_text(
        "".join(
            line + "\n" + ('{"body": "cut short\n' if number % 50 == 0 else "")
            for number, line in enumerate(lines.splitlines())
        )
    )
    env = {
        **_kafka_env(tmp_path, kafka_bootstrap, kafka_topic_prefix),
        "OVERHEARD_GEO__ENABLED": "false",
        "OVERHEARD_MODELS__ENABLED": "false",
    }
    interrupt_replay(
        [str(archive), "--bus", "kafka", "--db", f"sqlite:///{tmp_path}/o.db"],
        env,
        tmp_path / "stderr.txt",
        lambda _process: dead_letters_logged(tmp_path / "stderr.txt") >= 20,
        ended_within_s=120,
    )
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert not [t for t in admin.list_topics() if t.startswith(kafka_topic_prefix)]
    finally:
        admin.close()


def test_two_replays_through_kafka_at_once_keep_to_their_own_posts(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    env = {**os.environ, **_kafka_env(tmp_path, kafka_bootstrap, kafka_topic_prefix)}
    small = _pushshift_archive(tmp_path / "small.jsonl", seconds_apart=60.0, count=40)
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "overheard", "replay", str(archive), "--json", "--bus", "kafka"]
            + ["--db", f"sqlite:///{tmp_path}/{name}.db"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, archive in (("sample", SAMPLE), ("small", small))
    }
    summaries = {}
    for name, process in runs.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr.decode()
        summaries[name] = json.loads(stdout)
    assert summaries["sample"]["posts_read"] == sum(summaries["sample"]["outcomes"].values())
    assert summaries["sample"]["posts_read"] == 1000
    assert summaries["small"]["posts_read"] == sum(summaries["small"]["outcomes"].values()) == 40
