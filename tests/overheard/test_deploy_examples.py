"""What can be checked of config/deploy/ without docker or a running systemd.

The compose file is parsed and each overheard container's environment must name real
settings and load; its commands must be ones the CLI accepts. The systemd unit goes
through `systemd-analyze verify` (pointed at this checkout's executable). What these
do not prove: that the images build, the containers start, or the unit runs as PID 1
would run it (docker and a booted systemd are not on the development machine).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from overheard.cli import app
from overheard.daemon import StageName
from overheard.paths import CONFIG_DIR
from overheard.settings import DEFAULT_FILE, ENV_PREFIX, Settings, load_settings

DEPLOY = CONFIG_DIR / "deploy"
#: Read outside the settings: the file to load, and where config/ is (`overheard.paths`).
NOT_SETTINGS = {"OVERHEARD_CONFIG", "OVERHEARD_CONFIG_DIR"}
OVERHEARD_SERVICES = ("classify", "sink", "check")


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def is_setting(variable: str) -> bool:
    """Whether `OVERHEARD_A__B` names a field of the settings (A, then B within it)."""
    model: type[BaseModel] = Settings
    parts = variable.removeprefix(ENV_PREFIX).lower().split("__")
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if depth < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def interpolated(value: object) -> str:
    """A compose value with `${NAME:?message}` / `${NAME}` replaced by a stand-in."""
    return re.sub(r"\$\{[A-Z0-9_]+(:[?-][^}]*)?\}", "stand-in", str(value))


def dockerfile_env() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            pairs.update(re.findall(r"(\w+)=(\S+)", line))
    return pairs


def test_compose_runs_overheard_for_each_stage_with_the_health_port_it_serves() -> None:
    services = compose()["services"]
    assert set(OVERHEARD_SERVICES) <= set(services)
    for name in ("classify", "sink"):
        command = services[name]["command"]
        assert command[:2] == ["run", "--stage"] and command[2] == StageName(name).value
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert "127.0.0.1:9464/readyz" in probe
        assert services[name]["stop_grace_period"] == "30s"
        grace = float(services[name]["environment"]["OVERHEARD_DAEMON__SHUTDOWN_GRACE_S"])
        assert grace < 30, "the grace period must end before compose kills the container"
    assert "EXPOSE 9464" in (DEPLOY / "Dockerfile").read_text()
    assert Settings.model_fields["health"].default.port == 9464


def test_every_overheard_variable_of_the_examples_is_a_setting() -> None:
    services = compose()["services"]
    names = {name for s in OVERHEARD_SERVICES for name in services[s]["environment"]}
    names |= set(dockerfile_env())
    unit = (DEPLOY / "overheard@.service").read_text()
    names |= set(re.findall(r"^Environment=(OVERHEARD_\w+)=", unit, re.MULTILINE))
    readme = (DEPLOY / "README.md").read_text()
    names |= set(re.findall(r"\b(OVERHEARD_\w+)=", readme))
    overheard = {name for name in names if name.startswith(ENV_PREFIX)}
    assert {"OVERHEARD_BUS__BOOTSTRAP_SERVERS", "OVERHEARD_HEALTH__ENABLED"} <= overheard
    unknown = sorted(name for name in overheard - NOT_SETTINGS if not is_setting(name))
    assert unknown == []


@pytest.mark.parametrize("service", ["classify", "sink"])
def test_the_compose_environment_loads_as_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = compose()["services"][service]["environment"]
    for name, value in {**dockerfile_env(), **environment}.items():
        if name not in NOT_SETTINGS:
            monkeypatch.setenv(name, interpolated(value))
    settings = load_settings(DEFAULT_FILE)
    assert settings.bus.bootstrap_servers == "kafka:9092"
    assert settings.database.url.startswith("postgresql+psycopg://overheard@postgres:5432/")
    assert settings.database.password is not None
    assert settings.health.enabled and settings.health.host == "0.0.0.0"


@pytest.mark.parametrize("service", OVERHEARD_SERVICES)
def test_the_compose_commands_are_ones_the_cli_accepts(service: str) -> None:
    command = [str(part) for part in compose()["services"][service]["command"]]
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    executable = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "overheard"
    unit = (DEPLOY / "overheard@.service").read_text()
    assert "ExecStart=/opt/overheard/.venv/bin/overheard run --stage %i" in unit
    (tmp_path / "overheard@.service").write_text(
        unit.replace("/opt/overheard/.venv/bin/overheard", str(executable))
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "overheard@classify.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""
