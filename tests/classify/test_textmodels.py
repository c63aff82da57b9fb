"""The trained text models: artefacts, loading, scoring, and what they learnt."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from overheard.classify import datasets
from overheard.classify.datasets import Source
from overheard.classify.encoder import METRICS_FILE as ENCODER_METRICS
from overheard.classify.encoder import SHIPPED
from overheard.classify.textmodels import (
    ENCODER,
    LINEAR,
    METADATA_FILE,
    MODEL_FILE,
    StaleModels,
    TextModels,
    decision_matrix,
    ensure_models,
)
from overheard.cli import app
from overheard.errors import ConfigError, ModelError
from tests.classify.conftest import DATA, Trained

HEADS = {"complaint", "civic", "civic_bengaluru", "category"}


def test_metadata_names_version_thresholds_labels_and_data(trained: Trained) -> None:
    metadata = json.loads((trained.folder / METADATA_FILE).read_text())
    assert re.fullmatch(r"text-models/\d{8}-[0-9a-f]{10}", metadata["version"])
    assert trained.models.encoder is not None
    assert trained.models.version == f"{metadata['version']}+{trained.models.encoder.version}"
    assert 0 < trained.models.complaint_threshold < 1
    assert 0 < trained.models.civic_threshold < 1
    assert 0 < trained.models.civic_gate < metadata["thresholds"]["civic"]
    assert set(trained.models.labels) == set(datasets.load_label_map().values())
    assert {"python", "scikit-learn", "numpy"} <= set(metadata["libraries"])
    for source in Source:
        provenance = metadata["data"][source.value]
        path = datasets.data_file(DATA, source)
        assert provenance["file"] == path.name
        assert provenance["sha256"] == datasets.sha256_of(path)
        assert provenance["train_rows"] + provenance["heldout_rows"] == provenance["rows"]


def test_metrics_hold_heldout_and_cv_figures_per_head(trained: Trained) -> None:
    metrics = json.loads((trained.folder / "metrics.json").read_text())
    assert set(metrics["heldout"]) == HEADS
    for head in ("complaint", "civic"):
        assert {"precision", "recall", "f1", "macro_f1", "accuracy", "n"} <= set(
            metrics["heldout"][head]
        )
        assert 0 <= metrics["cv"][head]["f1"] <= 1
    category = metrics["heldout"]["category"]
    assert category["labels"] == sorted(category["per_class"])
    assert sum(sum(row) for row in category["confusion"]["rows"].values()) == category["n"]
    assert 0 <= metrics["cv"]["category"]["macro_f1"] <= 1


def test_heldout_csv_reproduces_the_training_figures(trained: Trained) -> None:
    """complaint and civic are the encoder's (measured when it was fine-tuned),
    category the linear head's."""
    linear = json.loads((trained.folder / "metrics.json").read_text())
    encoder = json.loads((SHIPPED / ENCODER_METRICS).read_text())
    for task in ("complaint", "civic", "category"):
        metrics = linear if task == "category" else encoder
        result = CliRunner().invoke(
            app,
            [
                "eval",
                str(trained.folder / "heldout" / f"{task}.csv"),
                "--task",
                task,
                "--models",
                str(trained.folder),
                "--json",
            ],
            env={"COLUMNS": "200"},
        )
        assert result.exit_code == 0, result.output
        figures = json.loads(result.stdout)
        expected = metrics["heldout"][task]
        assert figures["n"] == expected["n"]
        for key in ("f1", "macro_f1", "accuracy"):
            if key in expected:
                assert figures[key] == expected[key]


def test_scores_are_probabilities_over_the_labels(trained: Trained) -> None:
    scores = trained.models.score(["the streetlight on my block has been out for weeks"])
    (score,) = scores
    assert 0 <= score.complaint <= 1 and 0 <= score.civic <= 1
    assert set(score.category_scores) == set(trained.models.labels)
    assert sum(score.category_scores.values()) == pytest.approx(1.0, abs=1e-6)
    assert score.category_score == max(score.category_scores.values())
    assert score.category_scores[score.category] == score.category_score


def test_the_heads_give_scikit_learns_probabilities_bit_for_bit(trained: Trained) -> None:
    """Scoring skips scikit-learn's input checks (`CalibratedHead.predict_proba`): on every
    held-out text, in batches of the size scoring sees, each head's probabilities are the
    very floats scikit-learn's `predict_proba` gives."""
    models = trained.models
    texts = []
    for task in ("complaint", "civic", "category"):
        with (trained.folder / "heldout" / f"{task}.csv").open(newline="") as rows:
            texts += [row["text"] for row in csv.DictReader(rows)]
    assert len(texts) > 1000
    for start in range(0, len(texts), 131):
        features = models._featurizer.transform(texts[start : start + 131])
        assert features.data.tobytes() == (
            models._featurizer.fitted.transform(texts[start : start + 131]).data.tobytes()
        )
        for head in (models._complaint, models._civic, models._category):
            expected = head.calibrator.predict_proba(decision_matrix(head.svm, features))
            got = head.predict_proba(features)
            assert got.shape == expected.shape
            assert got.tobytes() == expected.tobytes()


def test_what_the_heads_learnt(trained: Trained) -> None:
    models = trained.models
    pothole, garbage, chatter = models.score(
        [
            "Huge potholes all along the main road, nobody has fixed them for months",
            "Garbage has been dumped on the corner for two weeks and it stinks",
            "Had a lovely lunch with my sister today, what a sunny afternoon",
        ]
    )
    assert pothole.category == "pothole"
    assert garbage.category == "trash_dumping"
    assert pothole.civic > chatter.civic and garbage.civic > chatter.civic
    assert pothole.complaint > chatter.complaint


def test_the_encoder_rescores_what_the_civic_gate_lets_through(trained: Trained) -> None:
    models = TextModels.load(trained.folder)
    texts = [
        "The streetlight on our block has been out for two weeks",
        "Trash is piled up in the alley behind my house again",
        "@united lost my bag again, worst airline ever",
        "What a gorgeous sunset over the harbor tonight",
        "Congrats to the Orioles on the win!",
        "New phone, who dis",
    ]
    linear = models.score(texts, encode=False)
    assert {s.model for s in linear} == {LINEAR}
    models.civic_gate = float(np.median([s.civic for s in linear]))
    gated = models.score(texts)
    full = models.score(texts, gate=False)
    assert {s.model for s in full} == {ENCODER}
    assert models.encoder is not None
    for alone, through_gate, encoded in zip(linear, gated, full, strict=True):
        assert encoded.complaint_threshold == models.encoder.thresholds["complaint"]
        if alone.civic >= models.civic_gate:
            assert through_gate.model == ENCODER
            assert (through_gate.complaint, through_gate.civic) == pytest.approx(
                (encoded.complaint, encoded.civic)
            )
        else:
            assert through_gate.model == LINEAR
            assert (through_gate.complaint, through_gate.civic) == (alone.complaint, alone.civic)
            assert through_gate.civic_threshold == models.linear_thresholds["civic"]
        assert through_gate.category == encoded.category == alone.category
    assert gated[0].model == gated[1].model == ENCODER
    assert {s.model for s in gated} == {ENCODER, LINEAR}


def test_without_the_encoder_the_linear_heads_decide(trained: Trained) -> None:
    models = TextModels.load(trained.folder, encoder=None)
    assert models.encoder is None
    assert models.version == json.loads((trained.folder / METADATA_FILE).read_text())["version"]
    assert models.complaint_threshold == models.linear_thresholds["complaint"]
    assert {s.model for s in models.score(["the streetlight is out", "hi"], gate=False)} == {LINEAR}


def test_a_folder_of_an_older_format_is_trained_again(trained: Trained, tmp_path: Path) -> None:
    folder = _copy(trained, tmp_path)
    metadata = json.loads((folder / METADATA_FILE).read_text())
    metadata["format"] = 1
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(StaleModels, match="format 1"):
        TextModels.load(folder)
    assert ensure_models(folder, DATA).version == trained.models.version


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀😡🔥" * 5,
        "https://t.co/abc http://x.org/y",
        "x" * 100_000,
        "bad \ud800 \udfff",
    ],
)
def test_bad_input_scores_without_crashing(trained: Trained, text: str) -> None:
    (score,) = trained.models.score([text])
    assert 0 <= score.complaint <= 1
    assert score.category in trained.models.labels


def test_an_empty_batch_scores_to_nothing(trained: Trained) -> None:
    assert trained.models.score([]) == []


def test_ensure_models_loads_a_trained_folder_without_training(trained: Trained) -> None:
    models = ensure_models(trained.folder, Path("/nonexistent/data"))
    assert models.version == trained.models.version


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="overheard train"):
        TextModels.load(tmp_path / "absent")
    assert issubclass(ModelError, ConfigError)


def test_ensure_models_without_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="labelled data absent"):
        ensure_models(tmp_path / "models", tmp_path / "no-data")


def _copy(trained: Trained, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(trained.folder, folder)
    return folder


def test_incomplete_folder_is_a_clear_error(trained: Trained, tmp_path: Path) -> None:
    folder = _copy(trained, tmp_path)
    (folder / MODEL_FILE).unlink()
    with pytest.raises(ModelError, match=r"incomplete \(missing model.joblib\)"):
        TextModels.load(folder)


def test_corrupt_model_is_a_clear_error(trained: Trained, tmp_path: Path) -> None:
    folder = _copy(trained, tmp_path)
    (folder / MODEL_FILE).write_bytes(b"not a pickle at all")
    with pytest.raises(ModelError, match="cannot be loaded"):
        TextModels.load(folder)


def test_corrupt_metadata_is_a_clear_error(trained: Trained, tmp_path: Path) -> None:
    folder = _copy(trained, tmp_path)
    (folder / METADATA_FILE).write_text("{")
    with pytest.raises(ModelError, match="unreadable"):
        TextModels.load(folder)


@pytest.mark.parametrize(("library", "version"), [("scikit-learn", "0.24.2"), ("python", "3.8.10")])
def test_models_from_another_version_are_refused(
    trained: Trained, tmp_path: Path, library: str, version: str
) -> None:
    folder = _copy(trained, tmp_path)
    metadata = json.loads((folder / METADATA_FILE).read_text())
    metadata["libraries"][library] = version
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ModelError, match=f"built with {library} {re.escape(version)}"):
        TextModels.load(folder)
