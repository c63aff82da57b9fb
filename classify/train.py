"""Training the text models (`overheard train`, `make model`).

Each head learns from the training split of its sets only (the committed
held-out keys are never seen). Its threshold is the one that maximises F1 on
out-of-fold probabilities of the target set's training rows; rows borrowed from
other sets are in every fold's training side and never scored. The
cross-validation folds share one featurizer fitted on every training text: it
learns n-gram vocabularies and IDF weights, no labels.

The held-out figures are measured once, after everything is chosen.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from overheard.classify import datasets
from overheard.classify.datasets import Row, Source
from overheard.classify.textfeatures import featurizer
from overheard.classify.textmetrics import binary_metrics, category_metrics
from overheard.classify.textmodels import (
    FORMAT,
    HELDOUT_DIR,
    METADATA_FILE,
    METRICS_FILE,
    MODEL_FILE,
    CalibratedHead,
    TextModels,
    decision_matrix,
    runtime_versions,
)
from overheard.errors import ConfigError

log = logging.getLogger(__name__)

CONFIG_FILE = datasets.REPO / "config" / "models" / "text-models.toml"


def load_config(path: Path = CONFIG_FILE) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            config = tomllib.load(handle)
        for section in ("features", "complaint", "civic", "category"):
            if not isinstance(config.get(section), dict):
                raise ConfigError(f"{path}: no [{section}] table")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"training configuration {path}: {exc}") from exc
    return config


@dataclass
class HeadData:
    """One head's training rows: the target set's rows first (`n_target` of them,
    cross-validated), then rows borrowed from other sets."""

    texts: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    n_target: int = 0

    def add(self, rows: Sequence[Row], label: Any, weight: float) -> None:
        """Rows with their label (a callable of the row, or a fixed value)."""
        if weight <= 0:
            return
        for row in rows:
            self.texts.append(row.text)
            self.labels.append(label(row) if callable(label) else label)
            self.weights.append(weight)


def complaint_data(acl: Sequence[Row], mumbai: Sequence[Row], cfg: dict[str, Any]) -> HeadData:
    data = HeadData()
    data.add(acl, lambda row: row.complaint, 1.0)
    data.n_target = len(acl)
    positives = [row for row in mumbai if row.complaint == 1]
    data.add(positives, 1, float(cfg.get("mumbai_positive_weight", 0.0)))
    return data


def civic_data(
    mumbai: Sequence[Row], bengaluru: Sequence[Row], acl: Sequence[Row], cfg: dict[str, Any]
) -> HeadData:
    data = HeadData()
    data.add(mumbai, lambda row: row.civic, 1.0)
    data.n_target = len(mumbai)
    data.add(bengaluru, lambda row: row.civic, float(cfg.get("bengaluru_weight", 0.0)))
    data.add(acl, 0, float(cfg.get("acl_negative_weight", 0.0)))
    return data


def category_data(bengaluru: Sequence[Row], label_map: dict[str, str]) -> HeadData:
    rows = [row for row in bengaluru if row.category is not None]
    unmapped = sorted({row.category for row in rows if row.category not in label_map})
    if unmapped:
        raise ConfigError(f"the Bengaluru label map does not map {', '.join(map(str, unmapped))}")
    data = HeadData()
    data.add(rows, lambda row: label_map[row.category], 1.0)
    data.n_target = len(rows)
    return data


def _svm(cfg: dict[str, Any], seed: int) -> LinearSVC:
    balanced = cfg.get("class_weight", "balanced") == "balanced"
    return LinearSVC(
        C=float(cfg["C"]),
        class_weight="balanced" if balanced else None,
        max_iter=5000,
        random_state=seed,
    )


def _fit_svm(
    X: sp.csr_matrix, data: HeadData, cfg: dict[str, Any], seed: int, rows: Any = None
) -> LinearSVC:
    rows = np.arange(X.shape[0]) if rows is None else rows
    labels = np.asarray(data.labels)
    weights = np.asarray(data.weights, dtype=np.float64)
    return _svm(cfg, seed).fit(X[rows], labels[rows], sample_weight=weights[rows])


def _folds(data: HeadData, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds of the target rows; borrowed rows join every training side."""
    target = np.asarray(data.labels[: data.n_target])
    borrowed = np.arange(data.n_target, len(data.labels))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return [
        (np.concatenate([train, borrowed]), test)
        for train, test in splitter.split(np.zeros(data.n_target), target)
    ]


def fit_head(
    X: sp.csr_matrix, data: HeadData, cfg: dict[str, Any], seed: int, folds: int
) -> tuple[CalibratedHead, np.ndarray]:
    """A linear SVM on every row, calibrated on out-of-fold decisions of the target
    rows; returns the head and the target rows' out-of-fold probabilities."""
    out_of_fold: np.ndarray | None = None
    for train, test in _folds(data, folds, seed):
        decisions = decision_matrix(_fit_svm(X, data, cfg, seed, train), X[test])
        if out_of_fold is None:
            out_of_fold = np.zeros((data.n_target, decisions.shape[1]))
        out_of_fold[test] = decisions
    assert out_of_fold is not None
    balanced = cfg.get("calibrator_class_weight") == "balanced"
    calibrator = LogisticRegression(
        C=100.0, class_weight="balanced" if balanced else None, max_iter=1000
    )
    calibrator.fit(out_of_fold, np.asarray(data.labels[: data.n_target]))
    head = CalibratedHead(_fit_svm(X, data, cfg, seed), calibrator)
    return head, calibrator.predict_proba(out_of_fold)


def best_threshold(truth: np.ndarray, probability: np.ndarray) -> float:
    """The probability threshold that maximises F1 (the midpoint to the next score,
    so it does not sit on a training row's exact value)."""
    precision, recall, thresholds = precision_recall_curve(truth, probability)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))
    upper = thresholds[best]
    lower = probability[probability < upper].max(initial=0.0)
    return float((upper + lower) / 2)


def train_binary(
    X: sp.csr_matrix, data: HeadData, cfg: dict[str, Any], seed: int, folds: int
) -> tuple[CalibratedHead, float, dict[str, Any]]:
    """The head, its F1-maximising threshold, and the cross-validated figures at it."""
    head, probabilities = fit_head(X, data, cfg, seed, folds)
    truth = np.asarray(data.labels[: data.n_target], dtype=int)
    probability = probabilities[:, 1]
    threshold = best_threshold(truth, probability)
    figures = binary_metrics(truth.tolist(), (probability >= threshold).astype(int).tolist())
    figures = {"folds": folds, "threshold": round(threshold, 4), **figures}
    if "encoder_gate_recall" in cfg:
        figures["encoder_gate"] = encoder_gate(
            truth, probability, float(cfg["encoder_gate_recall"])
        )
    return head, threshold, figures


def encoder_gate(truth: np.ndarray, probability: np.ndarray, recall: float) -> float:
    """The highest probability that `recall` of the positives reach (out of fold): the
    encoder re-scores only texts at or above it."""
    positives = np.sort(probability[truth == 1])
    if not len(positives):
        return 0.0
    return float(positives[int(np.floor((1.0 - recall) * len(positives)))])


def train_category(
    X: sp.csr_matrix, data: HeadData, cfg: dict[str, Any], seed: int, folds: int
) -> tuple[CalibratedHead, dict[str, Any]]:
    head, probabilities = fit_head(X, data, cfg, seed, folds)
    predicted = [str(head.classes_[i]) for i in probabilities.argmax(axis=1)]
    figures = category_metrics(list(data.labels[: data.n_target]), predicted)
    keys = ("n", "labels", "macro_f1", "accuracy", "per_class")
    return head, {"folds": folds, **{k: figures[k] for k in keys}}


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _write_heldout(folder: Path, name: str, rows: Sequence[tuple[str, str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "text", "label"])
        writer.writerows(rows)


def _heldout_binary(models: TextModels, rows: Sequence[Row], head: str) -> dict[str, Any]:
    scores = models.score([row.text for row in rows])
    threshold = models.complaint_threshold if head == "complaint" else models.civic_threshold
    truth = [int(getattr(row, head)) for row in rows]
    predicted = [int(getattr(s, head) >= threshold) for s in scores]
    return binary_metrics(truth, predicted)


def train(
    data_dir: Path = datasets.DEFAULT_DATA_DIR,
    out_dir: Path = Path("var/models"),
    seed: int | None = None,
    config_path: Path = CONFIG_FILE,
) -> dict[str, Any]:
    """Train the three heads into `out_dir`; returns the metrics it writes.

    Native thread pools are held to one thread: on a busy machine the solvers'
    OpenMP and BLAS threads spin against each other and a fit takes ten times as long.
    """
    with threadpool_limits(limits=1):
        return _train(Path(data_dir), Path(out_dir), seed, config_path)


def _train(data_dir: Path, out_dir: Path, seed: int | None, config_path: Path) -> dict[str, Any]:
    started = time.monotonic()
    config = load_config(config_path)
    seed = int(config.get("seed", 0)) if seed is None else seed
    folds = int(config.get("cv_folds", 5))
    label_map = datasets.load_label_map()
    acl = datasets.load_split(data_dir, Source.ACL)
    mumbai = datasets.load_split(data_dir, Source.MUMBAI)
    bengaluru = datasets.load_split(data_dir, Source.BENGALURU)

    heads = {
        "complaint": complaint_data(acl.train, mumbai.train, config["complaint"]),
        "civic": civic_data(mumbai.train, bengaluru.train, acl.train, config["civic"]),
        "category": category_data(bengaluru.train, label_map),
    }
    every_text = sorted({text for data in heads.values() for text in data.texts})
    feat_cfg = config["features"]
    features = featurizer(
        int(feat_cfg["ngrams"]),
        int(feat_cfg["prefix"]),
        int(feat_cfg["suffix"]),
        int(feat_cfg["min_df"]),
    )
    every_matrix = features.fit_transform(every_text).tocsr()
    row_of = {text: i for i, text in enumerate(every_text)}
    matrices = {
        name: every_matrix[[row_of[text] for text in data.texts]] for name, data in heads.items()
    }
    log.info("featurized in %.1fs", time.monotonic() - started)

    cv: dict[str, Any] = {}
    thresholds = {}
    fitted: dict[str, CalibratedHead] = {}
    for head in ("complaint", "civic"):
        fitted[head], thresholds[head], cv[head] = train_binary(
            matrices[head], heads[head], config[head], seed, folds
        )
        log.info("%s: CV F1 %.3f (%.0fs)", head, cv[head]["f1"], time.monotonic() - started)
    fitted["category"], cv["category"] = train_category(
        matrices["category"], heads["category"], config["category"], seed, folds
    )
    log.info(
        "category: CV macro-F1 %.3f (%.0fs)",
        cv["category"]["macro_f1"],
        time.monotonic() - started,
    )

    files = {source: datasets.data_file(data_dir, source) for source in Source}
    splits = {source: datasets.split_file(source) for source in Source}
    fingerprint = _digest(
        config_path.read_bytes(),
        datasets.BENGALURU_LABEL_MAP.read_bytes(),
        str(seed).encode(),
        *(datasets.sha256_of(files[s]).encode() for s in Source),
        *(splits[s].read_bytes() for s in Source),
    )
    split_of = {Source.ACL: acl, Source.MUMBAI: mumbai, Source.BENGALURU: bengaluru}
    metadata = {
        "version": f"text-models/{datetime.now(UTC):%Y%m%d}-{fingerprint[:10]}",
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "config": config,
        "label_map": label_map,
        "libraries": runtime_versions(),
        "format": FORMAT,
        "thresholds": thresholds,
        "gates": {"civic": cv["civic"].get("encoder_gate", 0.0)},
        "labels": [str(label) for label in fitted["category"].classes_],
        "data": {
            source.value: {
                "file": files[source].name,
                "sha256": datasets.sha256_of(files[source]),
                "rows": len(split_of[source].train) + len(split_of[source].heldout),
                "train_rows": len(split_of[source].train),
                "heldout_rows": len(split_of[source].heldout),
                "heldout_keys": str(splits[source].relative_to(datasets.REPO)),
            }
            for source in Source
        },
        "training_rows": {head: len(data.texts) for head, data in heads.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_FILE, METADATA_FILE, METRICS_FILE):
        (out_dir / name).unlink(missing_ok=True)  # never leave a half-old folder
    joblib.dump({"featurizer": features, **fitted}, out_dir / MODEL_FILE, compress=3)
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    models = TextModels.load(out_dir, encoder=None)

    heldout_folder = out_dir / HELDOUT_DIR
    category_rows = [row for row in bengaluru.heldout if row.category is not None]
    _write_heldout(heldout_folder, "complaint", [(r.key, r.text, r.complaint) for r in acl.heldout])
    _write_heldout(heldout_folder, "civic", [(r.key, r.text, r.civic) for r in mumbai.heldout])
    _write_heldout(
        heldout_folder,
        "category",
        [(r.key, r.text, label_map[str(r.category)]) for r in category_rows],
    )
    predicted = [
        s.category for s in models.score([row.text for row in category_rows], encode=False)
    ]
    heldout = {
        "complaint": {"set": "acl", **_heldout_binary(models, acl.heldout, "complaint")},
        "civic": {"set": "mumbai", **_heldout_binary(models, mumbai.heldout, "civic")},
        "civic_bengaluru": {
            "set": "bengaluru",
            **_heldout_binary(models, bengaluru.heldout, "civic"),
        },
        "category": {
            "set": "bengaluru",
            **category_metrics([label_map[str(r.category)] for r in category_rows], predicted),
        },
    }
    metrics = {
        "version": models.version,
        "heldout": heldout,
        "cv": cv,
        "training_seconds": round(time.monotonic() - started, 1),
    }
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
