"""`overheard eval --task location` on real places, with the gazetteer built from config/geo."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overheard.cli import app

SHARED_311 = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "311"
    / "baltimore311-2019-10-bbox.csv"
)
STABLE_KEYS = {
    "task",
    "n",
    "located_share",
    "median_error_m",
    "p90_error_m",
    "within_100m",
    "within_250m",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("gazetteer")
    return {"OVERHEARD_GEO__GAZETTEER_DIR": str(folder), "COLUMNS": "200"}


def run_eval(env: dict[str, str], *args: str) -> dict:
    result = CliRunner().invoke(app, ["eval", *args, "--task", "location", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_scores_each_row_against_its_true_point(tmp_path: Path, env: dict[str, str]) -> None:
    rows = [
        # The corner of Fleet St and S Ponca St in Highlandtown, as OSM has it.
        {
            "text": "streetlight out at the corner of Fleet and Ponca",
            "lat": 39.2861,
            "lon": -76.5549,
        },
        # The same words, but the truth is 1 km east: the error says so.
        {"text": "pothole at Fleet & Ponca", "lat": 39.2861, "lon": -76.5433},
        {"text": "the Orioles won again", "lat": 39.2839, "lon": -76.6217},
        {"text": "no true point", "lat": "NaN", "lon": -76.6},
    ]
    labelled = tmp_path / "set.jsonl"
    labelled.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_eval(env, str(labelled))
    assert set(result) >= STABLE_KEYS
    assert result["n"] == 3
    assert result["skipped_without_true_point"] == 1
    assert result["located_share"] == pytest.approx(2 / 3, abs=1e-3)
    assert result["within_100m"] == pytest.approx(1 / 3, abs=1e-3)
    assert result["within_250m"] == pytest.approx(1 / 3, abs=1e-3)
    assert result["by_precision"]["intersection"]["n"] == 2
    assert result["by_precision"]["none"]["n"] == 1
    assert 900 < result["p90_error_m"] < 1100


def test_on_real_baltimore_311_addresses(env: dict[str, str]) -> None:
    if not SHARED_311.exists():
        pytest.skip(f"{SHARED_311} is absent (shared data is not beside this clone)")
    result = run_eval(
        env,
        str(SHARED_311),
        "--text-column",
        "Address",
        "--lat-column",
        "Latitude",
        "--lon-column",
        "Longitude",
    )
    assert result["n"] == 1569
    # Measured 195 addresses (median 35 m) and 33 intersections (median 2 m): loose bounds.
    assert result["by_precision"]["address"]["n"] >= 150
    assert result["by_precision"]["address"]["median_error_m"] < 100
    assert result["by_precision"]["intersection"]["median_error_m"] < 30


def test_a_missing_text_column_is_a_clear_error(tmp_path: Path, env: dict[str, str]) -> None:
    labelled = tmp_path / "set.csv"
    labelled.write_text("Address,lat,lon\n1 Main St,39.3,-76.6\n")
    result = CliRunner().invoke(app, ["eval", str(labelled), "--json"], env=env)
    assert result.exit_code == 2
    assert "no column 'text'" in result.output
