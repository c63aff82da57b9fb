"""Fine-tuning the encoder: which rows teach which head, the dev split, calibration,
and a short real fine-tune that learns."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from overheard.classify import finetune
from overheard.classify.datasets import Row, Source
from overheard.classify.encoder import Encoder
from tests.classify import jax_checks

CFG = {"acl_civic_weight": 0.3, "mumbai_complaint_weight": 0.5}


def test_each_set_teaches_its_heads() -> None:
    acl = [
        Row(Source.ACL, "a1", "my flight was late", complaint=1),
        Row(Source.ACL, "a2", "hi", complaint=0),
    ]
    mumbai = [
        Row(Source.MUMBAI, "m1", "garbage not picked up", complaint=1, civic=1),
        Row(Source.MUMBAI, "m2", "nice rain today", complaint=0, civic=0),
        Row(Source.MUMBAI, "m3", "potholes everywhere", complaint=1, civic=1),
        Row(Source.MUMBAI, "m4", "match tonight", complaint=0, civic=0),
        Row(Source.MUMBAI, "m5", "traffic jam", complaint=0, civic=0),
        Row(Source.MUMBAI, "m6", "new cafe", complaint=0, civic=0),
    ]
    data = finetune.examples(acl, mumbai, CFG)
    assert data.labels[:2] == [(1, 0), (0, 0)]
    weights = np.asarray(data.weights)
    # ACL: complaint weight 1 (positives boosted), civic negatives at acl_civic_weight
    assert weights[1, 0] == 1.0 and weights[1, 1] == pytest.approx(0.3)
    # Mumbai negatives say nothing about complaints; its positives are complaints, and
    # complaint positives (3 rows against 1) are weighted down by sqrt(1/3)
    assert weights[3, 0] == 0.0
    assert weights[2, 0] == pytest.approx(0.5 * np.sqrt(1 / 3))
    # civic positives are boosted by the square root of the imbalance (6 rows : 2)
    assert weights[2, 1] == pytest.approx(np.sqrt(6 / 2))
    assert weights[3, 1] == 1.0


def test_the_dev_split_is_fixed_by_the_key() -> None:
    rows = [Row(Source.ACL, str(i), "t", complaint=0) for i in range(4000)]
    chosen = [finetune.is_dev(row, 0.15) for row in rows]
    assert chosen == [finetune.is_dev(row, 0.15) for row in rows]
    assert 0.13 < sum(chosen) / len(rows) < 0.17


def test_calibration_orders_probabilities_and_picks_an_f1_threshold() -> None:
    rng = np.random.default_rng(1)
    truth = np.r_[np.ones(200), np.zeros(400)].astype(int)
    logit = np.r_[rng.normal(2, 1, 200), rng.normal(-1, 1, 400)]
    slope, intercept, threshold = finetune.calibrate(logit, truth)
    assert slope > 0
    probability = 1 / (1 + np.exp(-(slope * logit + intercept)))
    predicted = probability >= threshold
    f1 = 2 * (predicted & (truth == 1)).sum() / (predicted.sum() + truth.sum())
    assert 0.1 < threshold < 0.9 and f1 > 0.85


def test_a_short_fine_tune_learns_a_task_the_base_model_does_not_know() -> None:
    if importlib.util.find_spec("jax") is None:  # not imported here: see jax_checks
        pytest.skip("JAX is in the train and dev extras")
    jax_checks.run("a_short_fine_tune_learns")


@pytest.mark.parametrize("kinds", [2, 3])
def test_the_category_head_gives_the_probabilities_of_its_regression(kinds: int) -> None:
    """The shipped head is a multinomial logistic regression over the fine-tuned encoder's
    pooled vectors, stored as a softmax layer (two classes: one logit, split in two)."""
    texts = {
        "Garbage": [
            "garbage dumped on the corner",
            "trash bags piled on the sidewalk",
            "the dumpster is overflowing",
            "litter all over the alley",
        ],
        "Streetlights": [
            "the streetlight is out",
            "lamp post dark all night",
            "street lights not working",
            "the light on my block is broken",
        ],
        "Potholes": [
            "huge pothole on the road",
            "the road surface is crumbling",
            "a crater in the street",
            "potholes everywhere on this avenue",
        ],
    }
    names = list(texts)[:kinds]
    label_map = {"Garbage": "trash_dumping", "Streetlights": "streetlight", "Potholes": "pothole"}
    rows = [
        Row(Source.BENGALURU, f"{name}{i}", text, civic=1, category=name)
        for name in names
        for i, text in enumerate(texts[name])
    ]
    encoder = Encoder.load()
    head = finetune.fit_category_head(encoder, rows, label_map, c=1.0)
    assert head.labels == tuple(sorted(label_map[name] for name in names))
    vectors = encoder.pooled([row.text for row in rows])
    regression = LogisticRegression(C=1.0, max_iter=5000).fit(
        vectors, [label_map[name] for name in names for _ in texts[name]]
    )
    np.testing.assert_allclose(
        head.probabilities(vectors), regression.predict_proba(vectors), rtol=1e-9, atol=1e-12
    )
