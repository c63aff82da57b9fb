import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overheard.cli import app
from overheard.errors import ConfigError
from overheard.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("OVERHEARD_") and name != "OVERHEARD_CACHE":
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_precedence_is_defaults_file_environment_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path, '[bus]\nbatch_size = 10\ntopic_prefix = "fromfile"\nclient_id = "file"\n'
    )
    settings = load_settings(path)
    assert (settings.bus.batch_size, settings.bus.topic_prefix) == (10, "fromfile")
    assert settings.bus.partitions == 3  # default

    monkeypatch.setenv("OVERHEARD_BUS__BATCH_SIZE", "20")
    monkeypatch.setenv("OVERHEARD_BUS__CLIENT_ID", "env")
    settings = load_settings(path, {"bus": {"batch_size": 30}})
    assert settings.bus.batch_size == 30  # flag beats environment
    assert settings.bus.client_id == "env"  # environment beats file
    assert settings.bus.topic_prefix == "fromfile"  # file beats default


def test_a_bad_file_names_the_file_the_key_and_what_was_expected(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nbatch_size = "many"\nkind = "rabbitmq"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert f"{path}: bus.batch_size: Input should be a valid integer" in message
    assert f"{path}: bus.kind: Input should be 'memory' or 'kafka'" in message


def test_unknown_keys_and_broken_toml_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bus.batchsize: Extra inputs are not permitted"):
        load_settings(write(tmp_path, "[bus]\nbatchsize = 3\n"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[bus\n"))


def test_a_bad_environment_value_is_reported_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERHEARD_BUS__PARTITIONS", "zero")
    with pytest.raises(ConfigError, match=r"environment \(OVERHEARD_\*\) or command line"):
        load_settings()


def test_secrets_are_masked_in_config_show(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OVERHEARD_DATABASE__URL", "postgresql+psycopg://ops:inurl-s3cret@db/oh")
    monkeypatch.setenv("OVERHEARD_DATABASE__PASSWORD", "env-s3cret")
    monkeypatch.setenv("OVERHEARD_BUS__SASL_PASSWORD", "sasl-s3cret")
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["database"]["password"] == "**********"
    assert shown["bus"]["sasl_password"] == "**********"
    assert shown["database"]["url"] == "postgresql+psycopg://ops:***@db/oh"
    everything = result.output + caplog.text
    for secret in ("inurl-s3cret", "env-s3cret", "sasl-s3cret"):
        assert secret not in everything
    assert "env-s3cret" in load_settings().database.effective_url()


def test_help_names_the_environment_variable_of_every_option() -> None:
    runner = CliRunner()
    for command in (["replay"], ["run"], ["check"], ["config", "show"]):
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        assert "OVERHEARD_CONFIG" in result.output
        assert "OVERHEARD_CITY" in result.output
