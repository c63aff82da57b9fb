"""`overheard ingest compliance x|reddit`: ask the platform about the posts sent, record
what is gone, and forget it in the sinks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overheard.cli import app
from overheard.ingest.cursors import CursorStore, Sent
from overheard.settings import JsonlSettings, Settings
from overheard.sinks.base import WRITTEN
from overheard.sinks.registry import create_sink
from overheard.testing.sink_kit import make_issue
from tests.ingest.replay import cassette
from tests.ingest.test_x_compliance import DELETED
from tests.ingest.test_x_search import RECORDED_IDS

REMOVED = "reddit:t3_48fbig"  # removed by moderators in info_removed_from_docs.json
KEPT = "reddit:t3_48fbm9"  # still up there


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "OVERHEARD_INGEST__CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "OVERHEARD_SINKS": '["jsonl"]',
        "OVERHEARD_JSONL__DIRECTORY": str(tmp_path / "jsonl"),
        "OVERHEARD_AUDIT__URL": f"sqlite:///{tmp_path}/audit.db",
        "OVERHEARD_X__BEARER_TOKEN": "x-command-test-token",
        "OVERHEARD_X__COMPLIANCE_POLL_S": "0.01",
        "OVERHEARD_REDDIT__CLIENT_ID": "reddit-command-test-id",
        "OVERHEARD_REDDIT__CLIENT_SECRET": "reddit-command-test-secret",
    }


def sent(tmp_path: Path, post_ids: list[str]) -> None:
    store = CursorStore(tmp_path / "checkpoints" / "live.sqlite")
    day = datetime(2026, 11, 1, tzinfo=UTC)
    store.commit("seed", {}, sent=[Sent(post_id, day) for post_id in post_ids])
    store.close()


def jsonl_text(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in sorted((tmp_path / "jsonl").rglob("*.jsonl")))


def test_reddit_removals_are_recorded_and_forgotten_in_the_sinks(
    tmp_path: Path, env: dict[str, str]
) -> None:
    sink = create_sink("jsonl", Settings(jsonl=JsonlSettings(directory=tmp_path / "jsonl")))
    sink.open()
    issues = []
    for n, post_id in enumerate((REMOVED, KEPT)):
        issue = make_issue(n)
        issues.append(
            issue.model_copy(update={"post": issue.post.model_copy(update={"id": post_id})})
        )
    assert sink.write(issues) == [WRITTEN, WRITTEN]
    sink.close()
    assert REMOVED in jsonl_text(tmp_path)
    sent(tmp_path, [KEPT, REMOVED, "reddit:t3_48fbgl", "reddit:t1_cklfmye"])

    with cassette("reddit/info_removed_from_docs.json"):
        result = CliRunner().invoke(app, ["ingest", "compliance", "reddit"], env=env)
    assert result.exit_code == 0, result.output
    assert "4 post(s) checked on reddit, 3 deleted or removed since read" in result.output
    assert "3 post(s) forgotten" in result.output
    assert REMOVED not in jsonl_text(tmp_path) and KEPT in jsonl_text(tmp_path)


def test_x_deletions_can_be_recorded_without_forgetting(
    tmp_path: Path, env: dict[str, str]
) -> None:
    sent(tmp_path, [f"x:{n}" for n in RECORDED_IDS])
    with cassette("x/compliance_from_docs.yaml"):
        result = CliRunner().invoke(app, ["ingest", "compliance", "x", "--no-forget"], env=env)
    assert result.exit_code == 0, result.output
    assert "10 post(s) checked on x, 2 deleted or removed since read" in result.output
    assert "forgotten" not in result.output
    store = CursorStore(tmp_path / "checkpoints" / "live.sqlite")
    assert store.deletions() == sorted(DELETED, key=lambda d: d.post_id)
    assert store.load("x:compliance")["gone"] == 2


def test_without_credentials_it_says_which_are_missing(tmp_path: Path, env: dict[str, str]) -> None:
    del env["OVERHEARD_X__BEARER_TOKEN"]
    result = CliRunner().invoke(app, ["ingest", "compliance", "x"], env=env)
    assert result.exit_code == 2
    assert "OVERHEARD_X__BEARER_TOKEN" in result.output


def test_no_credential_or_signed_url_reaches_the_output(
    tmp_path: Path, env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    sent(tmp_path, [f"x:{n}" for n in RECORDED_IDS] + [REMOVED])
    with cassette("x/compliance_from_docs.yaml"):
        x = CliRunner().invoke(app, ["ingest", "compliance", "x"], env=env)
    with cassette("reddit/info_removed_from_docs.json", every_answer=False):
        reddit = CliRunner().invoke(app, ["ingest", "compliance", "reddit"], env=env)
    captured = capfd.readouterr()
    shown = x.output + reddit.output + captured.out + captured.err
    assert "post(s) checked on x" in shown and "post(s) checked on reddit" in shown
    for name in (
        "OVERHEARD_X__BEARER_TOKEN",
        "OVERHEARD_REDDIT__CLIENT_ID",
        "OVERHEARD_REDDIT__CLIENT_SECRET",
    ):
        assert env[name] not in shown
    assert "SIGNATURE" not in shown
