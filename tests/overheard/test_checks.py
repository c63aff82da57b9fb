"""`overheard check` reaches the real broker and database and says what is wrong."""

import re
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from typer.testing import CliRunner, Result

from overheard.cli import app


def test_check_passes_when_everything_is_reachable(kafka_bootstrap: str, tmp_path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "check",
            "--bus",
            "kafka",
            "--bootstrap",
            kafka_bootstrap,
            "--db",
            f"sqlite:///{tmp_path}/overheard.db",
        ],
        env={"COLUMNS": "200", "OVERHEARD_GEO__GAZETTEER_DIR": str(tmp_path / "gazetteer")},
    )
    assert result.exit_code == 0, result.output
    for what in ("settings", "city profile", "gazetteer", "bus", "sink sql"):
        assert what in result.output
    assert "failed" not in result.output


def test_check_fails_and_names_what_is_unreachable() -> None:
    unreachable = "postgresql+psycopg://overheard:s3cret-pw@127.0.0.1:9/overheard"
    result = CliRunner().invoke(app, ["check", "--db", unreachable], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "sink sql" in result.output
    assert "failed" in result.output
    assert "s3cret-pw" not in result.output


def test_check_reports_a_broken_profile(tmp_path) -> None:
    broken = tmp_path / "nowhere.toml"
    result = CliRunner().invoke(app, ["check", "--city", str(broken)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "no such file" in result.output


def test_check_sums_up_what_failed_and_masks_every_secret() -> None:
    unreachable = "postgresql+psycopg://overheard@127.0.0.1:9/overheard"
    result = CliRunner().invoke(
        app,
        ["check", "--db", unreachable],
        env={"COLUMNS": "200", "OVERHEARD_DATABASE__PASSWORD": "pw-from-env-42"},
    )
    assert result.exit_code == 1
    assert "✗ failed" in result.output
    assert re.search(r"\b1 of \d+ failed: sink sql", result.output)
    assert "pw-from-env-42" not in result.output


def test_check_reports_text_models_that_cannot_be_loaded(tmp_path) -> None:
    broken = tmp_path / "models"
    broken.mkdir()
    (broken / "metadata.json").write_text("{")
    (broken / "model.joblib").write_bytes(b"")
    result = CliRunner().invoke(
        app,
        ["check", "--db", f"sqlite:///{tmp_path}/overheard.db"],
        env={
            "COLUMNS": "200",
            "OVERHEARD_BUS__KIND": "memory",
            "OVERHEARD_MODELS__DIRECTORY": str(broken),
            "OVERHEARD_GEO__GAZETTEER_DIR": str(tmp_path / "gazetteer"),
        },
    )
    assert result.exit_code == 1
    assert re.search(r"text models\s+│ ✗ failed\s+│ ModelError", result.output), result.output


def test_check_says_who_judges_without_models_or_labelled_data(tmp_path) -> None:
    env = {
        "COLUMNS": "300",
        "OVERHEARD_BUS__KIND": "memory",
        "OVERHEARD_MODELS__DIRECTORY": str(tmp_path / "models"),
        "OVERHEARD_MODELS__DATA_DIR": str(tmp_path / "no-data"),
        "OVERHEARD_GEO__GAZETTEER_DIR": str(tmp_path / "gazetteer"),
    }
    db = ["--db", f"sqlite:///{tmp_path}/overheard.db"]
    result = CliRunner().invoke(app, ["check", *db], env=env)
    assert result.exit_code == 0, result.output
    assert "no labelled data to train them: the shipped encoder minilm-lora/" in result.output
    env["OVERHEARD_MODELS__ENCODER"] = "false"
    result = CliRunner().invoke(app, ["check", *db], env=env)
    assert result.exit_code == 0, result.output
    assert "the profile's vocabulary decides alone" in result.output


def _check_with_posts_topic(
    bootstrap: str, prefix: str, partitions: int, tmp_path: Path, **env: str
) -> tuple[str, Result]:
    """`overheard check` against a broker where the posts topic exists with `partitions`."""
    posts = f"{prefix}.baltimore.posts"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(posts, partitions, 1)], wait_for_metadata=True)
    finally:
        admin.close()
    result = CliRunner().invoke(
        app,
        ["check", "--bus", "kafka", "--bootstrap", bootstrap],
        env={
            "COLUMNS": "400",
            "OVERHEARD_BUS__TOPIC_PREFIX": prefix,
            "OVERHEARD_DATABASE__URL": f"sqlite:///{tmp_path}/overheard.db",
            "OVERHEARD_GEO__GAZETTEER_DIR": str(tmp_path / "gazetteer"),
            **env,
        },
    )
    return posts, result


def test_check_names_a_topic_that_falls_short_of_the_config(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    posts, result = _check_with_posts_topic(
        kafka_bootstrap,
        kafka_topic_prefix.rstrip("."),
        1,
        tmp_path,
        OVERHEARD_BUS__PARTITIONS="2",
    )
    assert result.exit_code == 1, result.output
    assert re.search(
        rf"topics\s+│ ✗ failed\s+│ ConfigError: topic {re.escape(posts)} has 1 partition\(s\), "
        r"bus.partitions asks for 2",
        result.output,
    ), result.output


def test_check_shows_matching_topics_and_those_still_to_create(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = kafka_topic_prefix.rstrip(".")
    posts, result = _check_with_posts_topic(kafka_bootstrap, prefix, 3, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"{posts}: 3 partition(s), replication 1, min.insync.replicas=1" in result.output
    assert f"{prefix}.baltimore.issues, {prefix}.baltimore.deadletters: created on the first" in (
        result.output
    )
