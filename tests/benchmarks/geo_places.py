"""Place extraction against a plain `spacy.blank("en").pipe` over the same posts, in one
run; what it finds in the r/baltimore sample; and how it places the Baltimore 311
`Address` strings read as text (share located, median error against the row's point).

Lookups are remembered across posts (`Locator` caches them), so the best of the repeats
is the steady state of a running stage.
"""

from __future__ import annotations

import statistics
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import spacy
from rich.console import Console
from rich.table import Table

from overheard.geo.build import build_gazetteer
from overheard.geo.gazetteer import Gazetteer, distance_m
from overheard.geo.locate import Locator
from overheard.ingest.archive import iter_archive
from overheard.model import Post
from overheard.paths import CONFIG_DIR
from overheard.profile import load_profile
from tests.benchmarks.geo_gazetteer import (
    BALTIMORE_311,
    BALTIMORE_BOUNDARY,
    BALTIMORE_PBF,
    read_311,
)
from tests.benchmarks.timing import best_rate

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"
ROUNDS = 5  # the sample read this many times over, per measurement


def score_311(locator: Locator) -> dict[str, Any]:
    rows = read_311()
    errors: dict[str, list[float]] = {}
    for row in rows:
        result = locator.locate(row["Address"])
        if result.location is None:
            continue
        point = result.location
        error = distance_m(point.lat, point.lon, float(row["Latitude"]), float(row["Longitude"]))
        errors.setdefault(point.precision.value, []).append(error)
    return {
        "rows": len(rows),
        "located": sum(len(v) for v in errors.values()),
        "by_precision": {
            k: {"rows": len(v), "median_error_m": round(statistics.median(v), 1)}
            for k, v in sorted(errors.items())
        },
    }


def run(console: Console) -> dict[str, Any]:
    if not (BALTIMORE_PBF.exists() and BALTIMORE_BOUNDARY.exists()):
        console.print("geo_places: skipped, no shared data")
        return {"skipped": "shared data absent"}
    posts = [item.text for item, _ in iter_archive(SAMPLE) if isinstance(item, Post)]
    texts = posts * ROUNDS
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "baltimore.gazetteer"
        build_gazetteer(BALTIMORE_PBF, path, boundary=BALTIMORE_BOUNDARY)
        with Gazetteer.open(path) as gazetteer:
            blank = spacy.blank("en")
            locator = Locator(gazetteer, city_names=load_profile("baltimore").city.names)
            finder = locator.finder
            rates = {
                "nlp_pipe": best_rate(lambda: list(blank.pipe(texts)), len(texts)),
                "scan": best_rate(lambda: [finder.scan(t) for t in texts], len(texts)),
                "find": best_rate(lambda: [finder.find(t) for t in texts], len(texts)),
                "locate": best_rate(lambda: [locator.locate(t) for t in texts], len(texts)),
            }
            results = [locator.locate(t) for t in posts]
            accuracy = score_311(locator) if BALTIMORE_311.exists() else None
    baseline = rates["nlp_pipe"]
    table = Table(
        title=f"place extraction vs spacy.blank('en').pipe, {len(texts)} r/baltimore posts",
        title_justify="left",
    )
    for column in ("way", "posts/s", "÷ nlp.pipe"):
        table.add_column(column, justify="right")
    for name, rate in rates.items():
        table.add_row(name, f"{rate:,.0f}", f"{rate / baseline:.1f}×")
    console.print(table)
    located = [r for r in results if r.location is not None]
    by_precision = Counter(r.location.precision.value for r in located if r.location)
    outside = sum(r.inside_city is False for r in results)
    console.print(
        f"r/baltimore: {len(posts)} posts, {len(located)} located "
        f"({', '.join(f'{k} {v}' for k, v in by_precision.most_common())}), "
        f"{outside} outside the city"
    )
    if accuracy is not None:
        console.print(
            f"311 Address strings as text: {accuracy['rows']} rows, {accuracy['located']} "
            "located: "
            + ", ".join(
                f"{k} {v['rows']} (median {v['median_error_m']:.0f} m)"
                for k, v in accuracy["by_precision"].items()
            )
        )
    return {
        "source": "config/samples/reddit-baltimore-top-2013.csv",
        "posts": len(texts),
        **{f"{k}_posts_per_s": round(v) for k, v in rates.items()},
        **{f"{k}_vs_nlp_pipe": round(v / baseline, 2) for k, v in rates.items() if k != "nlp_pipe"},
        "reddit_sample": {
            "posts": len(posts),
            "located": len(located),
            "by_precision": dict(by_precision),
            "outside_city": outside,
        },
        "baltimore_311_as_text": accuracy,
    }
