"""sinks/README.md stays true: its example sink passes the conformance kit as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).parents[2] / "sinks" / "README.md"


def example(first_line: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (block,) = [b for b in blocks if b.startswith(first_line)]
    return block


def test_the_example_sink_passes_the_kit_with_the_example_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(overheard_files=example("# src/overheard_files/__init__.py"))
    pytester.makepyfile(test_conformance=example("# tests/test_conformance.py"))
    pytester.syspathinsert()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    # Every check but three: no secrets to look for, no `stored_text` to search for raw
    # authors, and no `forget` (the example keeps no text apart from the issue file).
    result.assert_outcomes(passed=10, skipped=3)


def test_the_example_entry_point_names_the_example_factory() -> None:
    text = README.read_text()
    assert 'files = "overheard_files:from_settings"' in text
    assert "def from_settings(settings):" in example("# src/overheard_files/__init__.py")
