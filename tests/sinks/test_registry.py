"""Discovering sinks through real distributions' entry points, broken ones included."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overheard.cli import app
from overheard.errors import ConfigError
from overheard.privacy import PrivateSink
from overheard.settings import AuditSettings, Settings
from overheard.sinks.base import WRITTEN
from overheard.sinks.registry import GROUP, create_sink, discover
from overheard.sinks.sql import SqlSink
from tests.factories import make_issue

PACKAGE = "overheard_extra_sinks"

SINK_MODULE = """
from overheard.sinks.base import WRITTEN, BaseSink

VERSION = "1.2.3"


class MemorySink(BaseSink):
    name = "memory"

    def __init__(self):
        self.issues = {}

    def write(self, issues):
        for issue in issues:
            self.issues.setdefault(issue.id, issue)
        return [WRITTEN] * len(issues)


def from_settings(settings):
    return MemorySink()


def not_a_sink(settings):
    return "a string"
"""


def install(site: Path, dist: str, version: str, entry_points: str) -> None:
    """A distribution as pip leaves it in site-packages: its dist-info and its package."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n" + textwrap.dedent(entry_points))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path with the `overheard-extra-sinks` distribution in it."""
    site = tmp_path / "site-packages"
    package = site / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(SINK_MODULE)
    (package / "exploding.py").write_text("raise RuntimeError('needs a licence key')\n")
    install(
        site,
        "overheard-extra-sinks",
        "1.2.3",
        f"""
        memory = {PACKAGE}:from_settings
        broken = {PACKAGE}.missing:from_settings
        exploding = {PACKAGE}.exploding:from_settings
        constant = {PACKAGE}:VERSION
        not_a_sink = {PACKAGE}:not_a_sink
        """,
    )
    monkeypatch.syspath_prepend(str(site))  # also clears importlib's caches
    yield site
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def test_the_built_in_sinks_are_found() -> None:
    found = discover()
    assert {"sql", "jsonl"} <= set(found)
    sql = found["sql"]
    assert (sql.package, sql.value, sql.ok) == (
        "overheard",
        "overheard.sinks.sql:from_settings",
        True,
    )
    assert sql.version == "0.1.0"


def test_each_entry_point_is_reported_and_broken_ones_carry_their_error(site: Path) -> None:
    found = discover()
    memory = found["memory"]
    assert (memory.package, memory.version, memory.value) == (
        "overheard-extra-sinks",
        "1.2.3",
        f"{PACKAGE}:from_settings",
    )
    assert memory.ok and memory.error is None and callable(memory.factory)
    assert found["broken"].error == f"ModuleNotFoundError: No module named '{PACKAGE}.missing'"
    assert found["broken"].factory is None
    assert found["exploding"].error == "RuntimeError: needs a licence key"
    assert found["constant"].error == f"{PACKAGE}:VERSION is a str, not a factory of sinks"
    # The others still load, the built-in ones too.
    assert found["sql"].ok and found["jsonl"].ok


def test_discovering_without_loading_imports_nothing(site: Path) -> None:
    found = discover(load=False)
    assert found["broken"].error is None and found["broken"].factory is None
    assert PACKAGE not in sys.modules


def test_a_sink_from_another_package_is_created_by_name(site: Path, tmp_path: Path) -> None:
    settings = Settings(audit=AuditSettings(url=f"sqlite:///{tmp_path / 'audit.db'}"))
    sink = create_sink("memory", settings)
    assert isinstance(sink, PrivateSink), "every sink is made pseudonymising and audited"
    assert type(sink.inner).__module__ == PACKAGE
    assert sink.write([make_issue()]) == [WRITTEN]
    assert isinstance(create_sink("sql", settings).inner, SqlSink)


def test_creating_a_broken_sink_says_why(site: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        create_sink("broken", Settings())
    assert str(raised.value) == (
        f"sinks: 'broken' ({PACKAGE}.missing:from_settings, from overheard-extra-sinks 1.2.3) "
        f"cannot be loaded: ModuleNotFoundError: No module named '{PACKAGE}.missing'"
    )
    with pytest.raises(ConfigError, match="'not_a_sink' .* is not a Sink"):
        create_sink("not_a_sink", Settings())
    with pytest.raises(ConfigError, match=r"no sink named 'nope' is installed \(found: broken, "):
        create_sink("nope", Settings())


def test_a_name_two_packages_declare_is_refused(site: Path) -> None:
    install(site, "overheard-rival", "0.9", f"memory = {PACKAGE}:from_settings\n")
    error = discover()["memory"].error or ""
    assert error.startswith("the name is declared more than once: by ")
    assert f"overheard-extra-sinks ({PACKAGE}:from_settings)" in error
    assert f"overheard-rival ({PACKAGE}:from_settings)" in error
    with pytest.raises(ConfigError, match="declared more than once"):
        create_sink("memory", Settings())


def test_sinks_list_shows_every_sink_and_the_errors(site: Path) -> None:
    result = CliRunner().invoke(app, ["sinks", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
        for line in result.output.splitlines()
        if line.startswith("│")
    }
    assert rows["memory"] == ["overheard-extra-sinks", "1.2.3", f"{PACKAGE}:from_settings", "ok"]
    assert rows["broken"] == [
        "overheard-extra-sinks",
        "1.2.3",
        f"{PACKAGE}.missing:from_settings",
        f"error ModuleNotFoundError: No module named '{PACKAGE}.missing'",
    ]
    assert rows["exploding"][3] == "error RuntimeError: needs a licence key"
    assert rows["sql"] == ["overheard", "0.1.0", "overheard.sinks.sql:from_settings", "ok"]
    assert rows["jsonl"][3] == "ok"
