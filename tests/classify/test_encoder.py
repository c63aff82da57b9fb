"""The shipped fine-tuned encoder: it loads, says what it is, scores any text, and
refuses a broken adapter clearly."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from overheard.classify.encoder import (
    ADAPTER_FILE,
    CATEGORY_FILE,
    METADATA_FILE,
    METRICS_FILE,
    SHIPPED,
    Encoder,
)
from overheard.errors import ModelError
from overheard.profile import load_profile


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder.load()


def test_the_adapter_ships_with_its_provenance_and_metrics(encoder: Encoder) -> None:
    assert re.fullmatch(r"minilm-lora/\d{8}-[0-9a-f]{10}", encoder.version)
    metadata = json.loads((SHIPPED / METADATA_FILE).read_text())
    assert metadata["heads"] == ["complaint", "civic"]
    assert set(metadata["data"]) == {"acl", "mumbai", "bengaluru"}
    metrics = json.loads((SHIPPED / METRICS_FILE).read_text())
    assert metrics["version"] == encoder.version
    assert set(metrics["dev"]) == {"complaint", "civic"}
    assert set(metrics["heldout"]) == {"complaint", "civic", "category"}
    for threshold in encoder.thresholds.values():
        assert 0 < threshold < 1


def test_civic_complaints_score_above_both_thresholds(encoder: Encoder) -> None:
    texts = [
        "The streetlight on our block has been out for two weeks and nobody fixes it",
        "Trash has been piling up in the alley behind my house for a month, rats everywhere",
        "Huge pothole on Eastern Ave just blew out my tire. This road is a disgrace",
    ]
    for complaint, civic in encoder.probabilities(texts):
        assert complaint >= encoder.thresholds["complaint"]
        assert civic >= encoder.thresholds["civic"]


def test_a_brand_complaint_is_a_complaint_but_not_civic(encoder: Encoder) -> None:
    [(complaint, civic)] = encoder.probabilities(
        ["@united you lost my bag again and nobody answers the phone. worst airline ever"]
    )
    assert complaint >= encoder.thresholds["complaint"]
    assert civic < encoder.thresholds["civic"]


def test_happy_posts_are_neither(encoder: Encoder) -> None:
    for complaint, civic in encoder.probabilities(
        ["What a gorgeous sunset over the harbor tonight", "Congrats to the Orioles on the win!"]
    ):
        assert complaint < encoder.thresholds["complaint"]
        assert civic < encoder.thresholds["civic"]


@pytest.mark.parametrize("text", ["", "🙂🙂🙂", "https://t.co/abc https://t.co/def", "x" * 100_000])
def test_any_text_gets_probabilities(encoder: Encoder, text: str) -> None:
    scores = encoder.probabilities([text])
    assert scores.shape == (1, 2)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


def test_an_empty_batch_scores_to_nothing(encoder: Encoder) -> None:
    assert encoder.probabilities([]).shape == (0, 2)


def test_a_score_does_not_depend_on_the_posts_beside_it(encoder: Encoder) -> None:
    texts = [f"post number {i} " + "about the broken sidewalk " * (i % 7) for i in range(70)]
    together = encoder.probabilities(texts)
    alone = np.vstack([encoder.probabilities([t]) for t in texts[:5]])
    np.testing.assert_array_equal(together[:5], alone)  # to the bit: replays depend on it


def test_a_missing_adapter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=re.escape(str(tmp_path))):
        Encoder.load(tmp_path)


def test_a_corrupt_adapter_is_a_clear_error(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "encoder")
    (tmp_path / "encoder" / ADAPTER_FILE).write_bytes(b"not an npz")
    with pytest.raises(ModelError, match="unreadable"):
        Encoder.load(tmp_path / "encoder")


def test_an_adapter_lacking_a_layer_is_a_clear_error(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "encoder")
    with np.load(SHIPPED / ADAPTER_FILE) as stored:
        kept = {k: stored[k] for k in stored.files if ".layer.2." not in k}
    np.savez(tmp_path / "encoder" / ADAPTER_FILE, **kept)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="lacks"):
        Encoder.load(tmp_path / "encoder")


def test_the_category_head_names_the_category_of_a_report(encoder: Encoder) -> None:
    assert encoder.category is not None
    assert set(encoder.category.labels) <= set(load_profile("baltimore").categories)
    metrics = json.loads((SHIPPED / METRICS_FILE).read_text())
    assert metrics["heldout"]["category"]["set"] == "bengaluru"
    texts = [
        "Garbage has been dumped on the corner for a week and it stinks",
        "The streetlight outside number 12 is out, the whole block is dark at night",
        "Sewage water is overflowing from the drain onto the road",
    ]
    encoded = encoder.encode(texts)
    assert encoded.category is not None and encoded.category.shape == (
        3,
        len(encoder.category.labels),
    )
    np.testing.assert_allclose(encoded.category.sum(axis=1), 1.0)
    named = [encoder.category.labels[i] for i in encoded.category.argmax(axis=1)]
    assert named == ["trash_dumping", "streetlight", "water_sewer"]
    # One pass gives both: the heads' probabilities are those `probabilities` gives.
    np.testing.assert_array_equal(encoded.heads, encoder.probabilities(texts))


def test_an_adapter_without_a_category_head_still_scores(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "encoder")
    (tmp_path / "encoder" / CATEGORY_FILE).unlink()
    bare = Encoder.load(tmp_path / "encoder")
    assert bare.category is None
    assert bare.encode(["a pothole"]).category is None


def test_a_category_head_of_the_wrong_shape_is_a_clear_error(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "encoder")
    np.savez(tmp_path / "encoder" / CATEGORY_FILE, weight=np.zeros((384, 2)), bias=np.zeros(2))
    with pytest.raises(ModelError, match="category head"):
        Encoder.load(tmp_path / "encoder")
