"""The live connectors against a real Kafka broker: checkpoints after acknowledgement, and
`overheard run --stage ingest --connector …`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overheard.cli import app
from overheard.ingest.cursors import CursorStore
from overheard.ingest.x_search import build_queries, stream_name
from overheard.model import Issue
from overheard.pipeline import Pipeline
from overheard.profile import load_profile
from overheard.settings import XSettings
from tests.ingest.crash_feed import settings
from tests.ingest.replay import CASSETTES, cassette

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIRST_PAGE_NEWEST = "1578516068309794817"
COMPLAINT = "x:1578509500000000002"  # "streetlight out on Fleet St in Fells Point for a week"
SECRET = "x-crash-test-token"


def feed(bootstrap: str, prefix: str, directory: Path, kill_at: int) -> int:
    """Run crash_feed.py; its exit code (-SIGKILL when it was killed)."""
    return subprocess.run(
        [
            sys.executable,
            str(HERE / "crash_feed.py"),
            bootstrap,
            prefix,
            str(directory),
            str(kill_at),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=180,
        check=False,
    ).returncode


def read_all(pipeline: Pipeline, topic: str, expected: int) -> list[bytes]:
    consumer = pipeline.bus.consumer(topic, f"reader-{time.monotonic_ns()}")
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < expected and time.monotonic() < deadline:
            values += [record.value for record in consumer.poll(500, 1.0)]
        values += [record.value for record in consumer.poll(500, 1.0)]  # nothing more
    finally:
        consumer.close()
    return values


def test_a_kill_between_flush_and_commit_repeats_the_batch_and_loses_none(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = kafka_topic_prefix.rstrip(".")
    stream = stream_name(build_queries(load_profile("baltimore"), XSettings())[0])
    # Page 1 is committed; page 2 is acknowledged by Kafka, then the process is killed.
    assert feed(kafka_bootstrap, prefix, tmp_path, kill_at=2) == -signal.SIGKILL
    store = CursorStore(tmp_path / "live.sqlite")
    assert store.load(stream)["since_id"] is None and store.load(stream)["next_token"]
    # The restart resumes at page 2 (the stored next_token) and finishes the poll.
    assert feed(kafka_bootstrap, prefix, tmp_path, kill_at=0) == 0
    assert store.load(stream) == {"since_id": FIRST_PAGE_NEWEST}
    # The posts to check for deletion later went in with each cursor: each once.
    assert len(store.sent_ids("x")) == 12

    pipeline = Pipeline.build(settings(kafka_bootstrap, prefix))
    posts = Counter(
        value.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode()
        for value in read_all(pipeline, pipeline.topics.posts, 14)
    )
    # Page 1's ten posts once, page 2's two twice: a duplicate, never a gap.
    assert sorted(posts.values()) == [1] * 10 + [2, 2] and posts[COMPLAINT] == 2
    # The classify stage turns both copies into the same issue.
    runner = pipeline.classify_runner()
    try:
        while runner.step(100, 2.0):
            pass
    finally:
        runner.close()
    issues = [Issue.from_bytes(v) for v in read_all(pipeline, pipeline.topics.issues, 2)]
    assert [(i.post.id, i.id) for i in issues] == [
        (COMPLAINT, Issue.id_for("baltimore", COMPLAINT))
    ] * 2


def test_overheard_run_stops_loudly_on_a_refused_token_without_leaking_it(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OVERHEARD_X__BEARER_TOKEN", SECRET)
    monkeypatch.setenv("OVERHEARD_INGEST__CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("OVERHEARD_BUS__TOPIC_PREFIX", kafka_topic_prefix.rstrip("."))
    monkeypatch.setenv("OVERHEARD_GEO__ENABLED", "false")
    args = ["run", "--stage", "ingest", "--connector", "x", "--bootstrap", kafka_bootstrap]
    with caplog.at_level(logging.DEBUG), cassette("x/search_recent_401_from_docs.yaml") as played:
        result = CliRunner().invoke(app, [*args, "--log-level", "DEBUG"])
    assert result.exit_code == 1, result.output
    assert played.play_count == 1  # one request: no retry storm
    captured = capfd.readouterr()
    logged = caplog.text + result.output + captured.out + captured.err
    assert "X refused the bearer token (401 Unauthorized)" in logged
    assert SECRET not in logged
    for path in CASSETTES.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(), path


def test_overheard_run_without_the_token_is_a_configuration_error(
    kafka_bootstrap: str, kafka_topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OVERHEARD_X__BEARER_TOKEN", raising=False)
    monkeypatch.setenv("OVERHEARD_BUS__TOPIC_PREFIX", kafka_topic_prefix.rstrip("."))
    result = CliRunner().invoke(
        app, ["run", "--stage", "ingest", "--connector", "x", "--bootstrap", kafka_bootstrap]
    )
    assert result.exit_code == 2
    assert "OVERHEARD_X__BEARER_TOKEN" in result.output
