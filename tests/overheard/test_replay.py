"""`overheard replay` end to end on the shipped sample, in one process, to several sinks."""

import json
from pathlib import Path

import sqlalchemy
from typer.testing import CliRunner

from overheard.cli import app
from overheard.paths import CONFIG_DIR

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"


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
