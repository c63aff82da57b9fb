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


# The text tasks, on hand-made sets scored by a stand-in for the trained models whose
# answers are known: "broken" makes a complaint, "hole" a pothole.


class _Score:
    def __init__(self, text: str) -> None:
        self.complaint = 0.9 if "broken" in text else 0.1
        self.civic = self.complaint
        self.category = "pothole" if "hole" in text else "trash_dumping"


class _Models:
    version = "text-models/test"
    complaint_threshold = 0.5
    civic_threshold = 0.5
    labels = ("pothole", "trash_dumping")

    def score(self, texts: list[str], gate: bool = True, encode: bool = True) -> list[_Score]:
        assert not gate or not encode, "eval measures the heads, without the encoder's gate"
        return [_Score(text) for text in texts]


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from overheard.classify.textmodels import TextModels

    monkeypatch.setattr(TextModels, "load", classmethod(lambda cls, directory: _Models()))


def run_text_eval(path: Path, task: str, *extra: str) -> CliRunner:
    return CliRunner().invoke(
        app, ["eval", str(path), "--task", task, *extra], env={"COLUMNS": "200"}
    )


@pytest.mark.parametrize("task", ["complaint", "civic"])
def test_binary_tasks_count_against_the_threshold(
    tmp_path: Path, stand_in: None, task: str
) -> None:
    labelled = tmp_path / "set.csv"
    labelled.write_text(
        "text,label\n"
        "broken light,1\n"  # true positive
        "broken road,0\n"  # false positive
        "nice day,1\n"  # false negative
        "nice day again,0\n"  # true negative
        "broken bin,1\n"  # true positive
        "unlabelled,maybe\n"  # skipped
    )
    result = run_text_eval(labelled, task, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert set(figures) >= {"task", "n", "precision", "recall", "f1", "macro_f1", "accuracy"}
    assert figures["task"] == task
    assert figures["n"] == 5
    assert figures["skipped_without_label"] == 1
    assert figures["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2, abs=1e-4)
    assert figures["accuracy"] == pytest.approx(3 / 5, abs=1e-4)


def test_category_maps_labels_and_prints_a_confusion_matrix(tmp_path: Path, stand_in: None) -> None:
    labelled = tmp_path / "set.jsonl"
    rows = [
        {"text": "a hole in the road", "label": "Potholes"},
        {"text": "hole near the bins", "label": "Garbage"},
        {"text": "bins overflowing", "label": "Garbage"},
        {"text": "trash everywhere", "label": "Garbage"},
        {"text": "no label here", "label": ""},
    ]
    labelled.write_text("".join(json.dumps(row) + "\n" for row in rows))
    label_map = tmp_path / "map.toml"
    label_map.write_text('[map]\nPotholes = "pothole"\nGarbage = "trash_dumping"\n')
    result = run_text_eval(labelled, "category", "--label-map", str(label_map), "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["task"] == "category"
    assert figures["n"] == 4
    assert figures["labels"] == ["pothole", "trash_dumping"]
    # pothole: P 1/2, R 1, F1 2/3; trash_dumping: P 1, R 2/3, F1 4/5
    assert figures["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2, abs=1e-4)
    assert figures["accuracy"] == pytest.approx(3 / 4, abs=1e-4)
    assert figures["confusion"]["rows"] == {"pothole": [1, 0], "trash_dumping": [1, 2]}

    shown = run_text_eval(labelled, "category", "--label-map", str(label_map))
    assert shown.exit_code == 0, shown.output
    assert "confusion" in shown.stdout
    assert "trash_dumping │       1 │          2" in shown.stdout
    assert "macro_f1" in shown.stdout


def test_a_missing_label_column_is_a_clear_error(tmp_path: Path, stand_in: None) -> None:
    labelled = tmp_path / "set.csv"
    labelled.write_text("text,truth\nbroken light,1\n")
    result = run_text_eval(labelled, "complaint", "--json")
    assert result.exit_code == 2
    assert "no column 'label'" in result.output


def test_missing_models_are_a_clear_error(tmp_path: Path) -> None:
    labelled = tmp_path / "set.csv"
    labelled.write_text("text,label\nbroken light,1\n")
    result = run_text_eval(labelled, "complaint", "--models", str(tmp_path / "none"))
    assert result.exit_code == 2
    assert "overheard train" in result.output
