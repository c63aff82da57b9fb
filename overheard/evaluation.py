"""`overheard eval`: measuring the pipeline on a labelled set.

The interface is DESIGN.md's ("Evaluation"): a CSV or JSONL file with a `text`
column and, for the location task, the true `lat` and `lon`; the metric names
are a stable interface. Other column names can be mapped with options.
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

from overheard.errors import ConfigError
from overheard.geo.locate import Locator
from overheard.model import Precision


@dataclass(frozen=True)
class Columns:
    text: str = "text"
    lat: str = "lat"
    lon: str = "lon"


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
