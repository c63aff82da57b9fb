"""Building: the boundary's sources, bad input, and the file written only when complete."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overheard.cli import app
from overheard.geo.build import GazetteerBuildError, build_gazetteer
from overheard.geo.gazetteer import Gazetteer, GazetteerError
from tests.geo.shared_data import BALTIMORE_BOUNDARY, BALTIMORE_PBF, need


@pytest.fixture
def truncated_pbf(tmp_path: Path) -> Path:
    need(BALTIMORE_PBF)
    data = BALTIMORE_PBF.read_bytes()
    path = tmp_path / "truncated.osm.pbf"
    path.write_bytes(data[: len(data) // 2])
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_truncated_pbf_is_a_clear_error_and_writes_nothing(
    truncated_pbf: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "city.gazetteer"
    with pytest.raises(GazetteerBuildError, match="corrupt or truncated"):
        build_gazetteer(truncated_pbf, out)
    assert not out.exists()


def test_random_bytes_are_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.osm.pbf"
    junk.write_bytes(random.Random(7).randbytes(20_000))
    out = tmp_path / "city.gazetteer"
    with pytest.raises(GazetteerBuildError, match="not a readable OSM file"):
        build_gazetteer(junk, out)
    assert not out.exists() and leftovers(tmp_path) == []


def test_failed_build_keeps_the_previous_gazetteer(truncated_pbf: Path, tmp_path: Path) -> None:
    out = tmp_path / "city.gazetteer"
    out.write_bytes(b"the previous gazetteer")
    with pytest.raises(GazetteerBuildError):
        build_gazetteer(truncated_pbf, out)
    assert out.read_bytes() == b"the previous gazetteer"
    assert leftovers(tmp_path) == []


def test_missing_pbf(tmp_path: Path) -> None:
    with pytest.raises(GazetteerBuildError, match="no such file"):
        build_gazetteer(tmp_path / "absent.osm.pbf", tmp_path / "city.gazetteer")


def test_clipped_relation_asks_for_a_boundary_file(tmp_path: Path) -> None:
    need(BALTIMORE_PBF)
    out = tmp_path / "city.gazetteer"
    # The extract's relation 133345 (Baltimore city) is clipped at the bbox.
    with pytest.raises(GazetteerBuildError, match="not whole.*--boundary"):
        build_gazetteer(BALTIMORE_PBF, out, admin_relation="133345")
    with pytest.raises(GazetteerBuildError, match="not whole"):
        build_gazetteer(BALTIMORE_PBF, out, admin_relation="Baltimore County")
    with pytest.raises(GazetteerBuildError, match="no administrative relation 'Atlantis'"):
        build_gazetteer(BALTIMORE_PBF, out, admin_relation="Atlantis")
    assert not out.exists()


def test_bad_boundary_file(tmp_path: Path) -> None:
    need(BALTIMORE_PBF)
    boundary = tmp_path / "city.geojson"
    boundary.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(GazetteerBuildError, match="no Polygon"):
        build_gazetteer(BALTIMORE_PBF, tmp_path / "city.gazetteer", boundary=boundary)


def test_not_a_gazetteer(tmp_path: Path) -> None:
    with pytest.raises(GazetteerError, match="no gazetteer"):
        Gazetteer.open(tmp_path / "absent.gazetteer")
    other = tmp_path / "other.sqlite"
    other.write_bytes(b"SQLite format 3\x00" + bytes(1000))
    with pytest.raises(GazetteerError, match="not a gazetteer"):
        Gazetteer.open(other)


def test_rebuild_replaces_the_file(baltimore_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "city.gazetteer"
    shutil.copy(baltimore_path, out)
    with Gazetteer.open(out) as before:
        assert before.block_size == 100
    build_gazetteer(BALTIMORE_PBF, out, block_size=50)
    with Gazetteer.open(out) as gazetteer:
        assert gazetteer.meta["source"] == "baltimore.osm.pbf"
        assert gazetteer.block_size == 50
        assert not gazetteer.has_boundary
    assert leftovers(tmp_path) == []


def test_cli_build(tmp_path: Path) -> None:
    need(BALTIMORE_PBF, BALTIMORE_BOUNDARY)
    out = tmp_path / "baltimore.gazetteer"
    result = CliRunner().invoke(
        app,
        [
            "gazetteer",
            "build",
            str(BALTIMORE_PBF),
            "--out",
            str(out),
            "--boundary",
            str(BALTIMORE_BOUNDARY),
            "--block-size",
            "100",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    with Gazetteer.open(out) as gazetteer:
        counts = gazetteer.counts()
        assert gazetteer.has_boundary
    for name in ("streets", "intersections", "addresses", "places", "neighbourhoods"):
        assert counts[name] > 0
        assert f"{name} " in result.output and str(counts[name]) in result.output
    assert "baltimore_city.geojson" in result.output


def test_cli_build_of_a_truncated_file(truncated_pbf: Path, tmp_path: Path) -> None:
    out = tmp_path / "city.gazetteer"
    result = CliRunner().invoke(
        app,
        ["gazetteer", "build", str(truncated_pbf), "--out", str(out)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 1
    assert "gazetteer build failed" in result.output and "truncated" in result.output
    assert not out.exists()
    assert os.listdir(tmp_path) == ["truncated.osm.pbf"]
