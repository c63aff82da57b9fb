"""`overheard eval`: measuring the pipeline on a labelled set.

The interface is DESIGN.md's ("Evaluation"): a CSV or JSONL file with a `text`
column and, by task, a `label` (1/0 for complaint and civic, a category name for
category, mapped to the taxonomy by `--label-map`) or the true `lat` and `lon`
(location); the metric names are a stable interface. Other column names can be
mapped with options.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from geopy.distance import geodesic
from rich.table import Table

from overheard.classify.textmetrics import binary_metrics, category_metrics
from overheard.classify.textmodels import TextModels
from overheard.errors import ConfigError
from overheard.geo.locate import Locator
from overheard.model import Precision

#: The text tasks, each scored by one head of the text models.
TEXT_TASKS = ("complaint", "civic", "category")


@dataclass(frozen=True)
class Columns:
    text: str = "text"
    lat: str = "lat"
    lon: str = "lon"
    label: str = "label"


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV (with a header) or JSONL file."""
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ConfigError(f"{path}:{number}: not JSON: {exc}") from exc
        return
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def _coordinate(row: dict[str, Any], column: str, limit: float) -> float | None:
    """The row's coordinate, or None when it is missing, not a number or out of range."""
    try:
        value = float(row[column])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) and -limit <= value <= limit else None


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


def evaluate_location(path: Path, locator: Locator, columns: Columns = Columns()) -> dict[str, Any]:
    """Locate every row's text and score it against the row's true point.

    A row counts as located when the text resolves more precisely than the city
    itself; rows without a usable true point are skipped and counted.
    """
    n = skipped = 0
    errors: list[float] = []
    by_precision: Counter[str] = Counter()
    errors_by_precision: dict[str, list[float]] = {}
    outside = 0
    for row in read_rows(path):
        if columns.text not in row:
            raise ConfigError(f"{path}: no column {columns.text!r} (use --text-column)")
        lat = _coordinate(row, columns.lat, 90)
        lon = _coordinate(row, columns.lon, 180)
        if lat is None or lon is None:
            skipped += 1
            continue
        n += 1
        result = locator.locate(str(row[columns.text] or ""))
        location = result.location
        if result.inside_city is False:
            outside += 1
        if location is None or location.precision is Precision.CITY:
            by_precision["none" if location is None else location.precision.value] += 1
            continue
        error = geodesic((lat, lon), (location.lat, location.lon)).meters
        errors.append(error)
        by_precision[location.precision.value] += 1
        errors_by_precision.setdefault(location.precision.value, []).append(error)
    return {
        "task": "location",
        "n": n,
        "skipped_without_true_point": skipped,
        "located_share": round(len(errors) / n, 4) if n else 0.0,
        "median_error_m": round(median(errors), 1) if errors else None,
        "p90_error_m": round(_percentile(errors, 0.9), 1) if errors else None,
        "within_100m": round(sum(e <= 100 for e in errors) / n, 4) if n else 0.0,
        "within_250m": round(sum(e <= 250 for e in errors) / n, 4) if n else 0.0,
        "outside_city": outside,
        "by_precision": {
            precision: {
                "n": count,
                "share": round(count / n, 4),
                "median_error_m": (
                    round(median(errors_by_precision[precision]), 1)
                    if precision in errors_by_precision
                    else None
                ),
            }
            for precision, count in sorted(by_precision.items())
        },
    }


_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def _flag(value: Any) -> int | None:
    """A 1/0 label, or None when the row gives none it can be read as."""
    if isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower() if value is not None else ""
    if text.endswith(".0"):
        text = text[:-2]
    return 1 if text in _TRUE else 0 if text in _FALSE else None


def _labelled(path: Path, columns: Columns) -> Iterator[tuple[str, Any]]:
    for row in read_rows(path):
        if not isinstance(row, dict) or columns.text not in row:
            raise ConfigError(f"{path}: no column {columns.text!r} (use --text-column)")
        if columns.label not in row:
            raise ConfigError(f"{path}: no column {columns.label!r} (use --label-column)")
        yield str(row[columns.text] or ""), row[columns.label]


def evaluate_text(
    path: Path,
    task: str,
    models: TextModels,
    label_map: dict[str, str] | None = None,
    columns: Columns = Columns(),
    batch: int = 2000,
) -> dict[str, Any]:
    """Score every row with the task's head and compare with the row's label.

    complaint and civic: a row is predicted positive when the head's probability
    reaches the threshold the models were trained with; rows whose label is not
    1/0 are skipped and counted. category: the label (after `label_map`, when
    given) is compared with the argmax class; macro-F1 is over the classes the
    labels hold, and rows with an empty label are skipped.
    """
    if task not in TEXT_TASKS:
        raise ConfigError(f"unknown text task {task!r}: one of {', '.join(TEXT_TASKS)}")
    texts: list[str] = []
    truth: list[Any] = []
    skipped = 0
    for text, raw in _labelled(path, columns):
        if task == "category":
            name = str(raw if raw is not None else "").strip()
            label = (label_map or {}).get(name, name)
            if not label:
                skipped += 1
                continue
            truth.append(label)
        else:
            flag = _flag(raw)
            if flag is None:
                skipped += 1
                continue
            truth.append(flag)
        texts.append(text)
    if task == "category":
        unknown = sorted(set(truth) - set(models.labels))
        predicted_labels = [
            s.category
            for i in range(0, len(texts), batch)
            for s in models.score(texts[i : i + batch], encode=False)
        ]
        figures = category_metrics(truth, predicted_labels)
        figures["unknown_labels"] = unknown
    else:
        threshold = models.complaint_threshold if task == "complaint" else models.civic_threshold
        probabilities = [
            getattr(s, task)
            for i in range(0, len(texts), batch)
            for s in models.score(texts[i : i + batch], gate=False)
        ]
        figures = binary_metrics(truth, [int(p >= threshold) for p in probabilities])
        figures["threshold"] = round(threshold, 4)
    return {
        "task": task,
        **figures,
        "skipped_without_label": skipped,
        "models": models.version,
    }


def text_tables(result: dict[str, Any], title: str) -> list[Table]:
    """A text task's figures as tables: the totals, and for category the per-class
    figures and the confusion matrix (rows: truth, columns: predicted)."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key in ("n", "precision", "recall", "f1", "macro_f1", "accuracy", "threshold"):
        if key in result:
            table.add_row(key, str(result[key]))
    table.add_row("skipped_without_label", str(result["skipped_without_label"]))
    table.add_row("models", result["models"])
    if result["task"] != "category":
        return [table]
    if result["unknown_labels"]:
        table.add_row("labels the models lack", ", ".join(result["unknown_labels"]))
    classes = Table(title="per class", title_justify="left")
    for name in ("class", "precision", "recall", "f1", "support"):
        classes.add_column(name, justify="left" if name == "class" else "right")
    for label, figures in result["per_class"].items():
        classes.add_row(label, *(str(figures[k]) for k in ("precision", "recall", "f1", "support")))
    confusion = Table(title="confusion (rows: truth, columns: predicted)", title_justify="left")
    confusion.add_column("truth")
    columns = result["confusion"]["columns"]
    for column in columns:
        confusion.add_column(column[:10], justify="right")
    for label, counts in result["confusion"]["rows"].items():
        confusion.add_row(label, *(str(c) for c in counts))
    return [table, classes, confusion]


def heldout_table(metrics: dict[str, Any]) -> Table:
    """The held-out figures `overheard train` measured, one row per head: precision,
    recall, F1 (of the positive class), macro-F1, accuracy, and the cross-validated
    F1 (macro-F1 for category) on the training split."""
    table = Table(title=f"held-out figures — {metrics['version']}", title_justify="left")
    for name in ("head", "set", "n", "P", "R", "F1", "macro-F1", "acc", "CV"):
        table.add_column(name, justify="left" if name in {"head", "set"} else "right")
    for head, figures in metrics["heldout"].items():
        cv = metrics["cv"].get(head, {})
        shown_cv = cv.get("f1", cv.get("macro_f1"))
        table.add_row(
            head,
            figures["set"],
            str(figures["n"]),
            *(
                str(figures.get(k, ""))
                for k in ("precision", "recall", "f1", "macro_f1", "accuracy")
            ),
            "" if shown_cv is None else str(shown_cv),
        )
    return table


def encoder_table(metrics: dict[str, Any]) -> Table:
    """The fine-tuned encoder's figures per head: on the dev rows its thresholds were
    chosen on, and on the held-out rows."""
    table = Table(title=f"encoder figures — {metrics['version']}", title_justify="left")
    for name in ("head", "rows", "set", "n", "P", "R", "F1", "macro-F1", "acc"):
        table.add_column(name, justify="left" if name in {"head", "rows", "set"} else "right")
    for split in ("dev", "heldout"):
        for head, figures in metrics[split].items():
            table.add_row(
                head,
                split,
                figures["set"],
                str(figures["n"]),
                *(
                    str(figures.get(k, ""))
                    for k in ("precision", "recall", "f1", "macro_f1", "accuracy")
                ),
            )
    return table
