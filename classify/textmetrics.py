"""The figures `overheard eval` and `overheard train` report, under DESIGN.md's stable names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def _round(value: float) -> float:
    return round(float(value), 4)


def binary_metrics(truth: Sequence[int], predicted: Sequence[int]) -> dict[str, Any]:
    """Precision, recall and F1 of the positive class; macro-F1 over both classes."""
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, average="binary", pos_label=1, zero_division=0
    )
    return {
        "n": len(truth),
        "positives": int(sum(truth)),
        "precision": _round(precision),
        "recall": _round(recall),
        "f1": _round(f1),
        "macro_f1": _round(
            f1_score(truth, predicted, average="macro", labels=[0, 1], zero_division=0)
        ),
        "accuracy": _round(accuracy_score(truth, predicted)) if truth else 0.0,
    }


def category_metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Macro-F1 over the classes the truth holds (a predicted class the truth never
    names costs recall, it adds no class), accuracy, per-class figures and the
    confusion matrix (rows: truth, columns: predicted, both in `labels` order then
    any predicted extra)."""
    labels = sorted(set(truth))
    extra = sorted(set(predicted) - set(labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    columns = labels + extra
    matrix = confusion_matrix(truth, predicted, labels=columns) if truth else []
    return {
        "n": len(truth),
        "labels": labels,
        "macro_f1": _round(f1.mean()) if labels else 0.0,
        "accuracy": _round(accuracy_score(truth, predicted)) if truth else 0.0,
        "per_class": {
            label: {
                "precision": _round(precision[i]),
                "recall": _round(recall[i]),
                "f1": _round(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": {
            "columns": columns,
            "rows": {
                label: [int(c) for c in matrix[i][: len(columns)]] for i, label in enumerate(labels)
            },
        },
    }
