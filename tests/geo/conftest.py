"""Gazetteers built once per session from the real extracts in ../shared/data/osm/."""

from __future__ import annotations

from pathlib import Path

import pytest

from overheard.geo.build import build_gazetteer
from overheard.geo.gazetteer import Gazetteer
from tests.geo.shared_data import BALTIMORE_BOUNDARY, BALTIMORE_PBF, MANHATTAN_PBF, need


@pytest.fixture(scope="session")
def baltimore_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need(BALTIMORE_PBF, BALTIMORE_BOUNDARY)
    out = tmp_path_factory.mktemp("gazetteer") / "baltimore.gazetteer"
    build_gazetteer(BALTIMORE_PBF, out, boundary=BALTIMORE_BOUNDARY)
    return out


@pytest.fixture(scope="session")
def baltimore(baltimore_path: Path) -> Gazetteer:
    return Gazetteer.open(baltimore_path)


@pytest.fixture(scope="session")
def manhattan(tmp_path_factory: pytest.TempPathFactory) -> Gazetteer:
    need(MANHATTAN_PBF)
    out = tmp_path_factory.mktemp("gazetteer") / "manhattan.gazetteer"
    build_gazetteer(MANHATTAN_PBF, out)
    return Gazetteer.open(out)
