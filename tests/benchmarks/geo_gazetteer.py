"""The gazetteer: build and load times on the shared OSM extracts, and how well it
places the real Baltimore 311 requests (address or intersection → the row's lat/lon).

Only the 311 rows whose streets the extract holds are scored (the extract covers
south-east Baltimore in detail and little else); the others are counted as "not covered".
Two readings of "holds": the street's name is in the gazetteer ("covered"), or the street
passes within `HELD_M` of the request's own point ("held": the extract holds the street
where the request is; a 2015 extract may hold only part of a long street).
"""

from __future__ import annotations

import csv
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from overheard.geo.build import build_gazetteer
from overheard.geo.gazetteer import Gazetteer, Located, distance_m

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
BALTIMORE_PBF = DATA / "osm" / "baltimore.osm.pbf"
BALTIMORE_BOUNDARY = DATA / "boundaries" / "baltimore_city.geojson"
MANHATTAN_PBF = DATA / "osm" / "manhattan_midtown.osm.pbf"
BALTIMORE_311 = DATA / "311" / "baltimore311-2019-10-bbox.csv"

#: How near the request's point a named street must pass for the extract to hold it there.
HELD_M = 100.0

_ADDRESS = re.compile(r"^(\d+)[A-Z]?(?:-\d+)?\s+(.+)$")


@dataclass
class Score:
    """How one kind of 311 location (address or intersection) was placed."""

    rows: int = 0
    covered: int = 0
    errors_m: list[float] = field(default_factory=list)
    by_precision: dict[str, int] = field(default_factory=dict)
    held: int = 0
    held_errors_m: list[float] = field(default_factory=list)

    @property
    def resolved(self) -> int:
        return len(self.errors_m)

    @property
    def share(self) -> float:
        return self.resolved / self.covered if self.covered else 0.0

    @property
    def held_share(self) -> float:
        return len(self.held_errors_m) / self.held if self.held else 0.0

    def median(self) -> float:
        return statistics.median(self.errors_m) if self.errors_m else float("nan")

    def held_median(self) -> float:
        return statistics.median(self.held_errors_m) if self.held_errors_m else float("nan")

    def p90(self) -> float:
        if len(self.errors_m) < 2:
            return self.median()
        return statistics.quantiles(self.errors_m, n=10)[-1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "covered": self.covered,
            "resolved": self.resolved,
            "resolved_share": round(self.share, 3),
            "median_error_m": round(self.median(), 1),
            "p90_error_m": round(self.p90(), 1),
            "by_precision": self.by_precision,
            "held": self.held,
            "held_resolved": len(self.held_errors_m),
            "held_resolved_share": round(self.held_share, 3),
            "held_median_error_m": round(self.held_median(), 1),
            "held_within_100m": sum(e <= 100 for e in self.held_errors_m),
        }


def read_311(path: Path = BALTIMORE_311) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row["Latitude"] not in ("", "NA")]


def score_311(gazetteer: Gazetteer, rows: list[dict[str, str]]) -> dict[str, Score]:
    """Scores for "intersection" and "address" rows against their Latitude/Longitude."""
    scores = {"intersection": Score(), "address": Score()}
    for row in rows:
        where = row["Address"].split(",")[0].strip()
        lat, lon = float(row["Latitude"]), float(row["Longitude"])
        found: Located | None
        if "&" in where:
            streets = [s.strip() for s in where.split("&") if s.strip()]
            if len(streets) < 2:
                continue
            score = scores["intersection"]
            score.rows += 1
            if not all(gazetteer.street(s) for s in streets[:2]):
                continue
            score.covered += 1
            found = gazetteer.intersection(streets[0], streets[1])
            named = streets
        else:
            match = _ADDRESS.match(where)
            if match is None:
                continue
            score = scores["address"]
            score.rows += 1
            if gazetteer.street(match.group(2)) is None:
                continue
            score.covered += 1
            found = gazetteer.address(int(match.group(1)), match.group(2))
            named = [match.group(2)]
        held = _held_there(gazetteer, named, lat, lon)
        score.held += held
        if found is not None:
            error = distance_m(lat, lon, found.lat, found.lon)
            score.errors_m.append(error)
            score.by_precision[found.precision] = score.by_precision.get(found.precision, 0) + 1
            if held:
                score.held_errors_m.append(error)
    return scores


def _held_there(gazetteer: Gazetteer, streets: list[str], lat: float, lon: float) -> bool:
    """Whether every named street passes within `HELD_M` of the request's point."""
    near: set[int] = set()
    for name in gazetteer.streets_near(lat, lon, HELD_M):
        if (match := gazetteer.street(name)) is not None:
            near.update(match.ids)
    matches = [gazetteer.street(s) for s in streets[:2]]
    return all(m is not None and near.intersection(m.ids) for m in matches)


def _timed_build(pbf: Path, out: Path, **options: Any) -> tuple[float, float, dict[str, int]]:
    started = time.perf_counter()
    report = build_gazetteer(pbf, out, **options)
    built = time.perf_counter() - started
    loads = []
    for _ in range(5):
        started = time.perf_counter()
        Gazetteer.open(out).close()
        loads.append(time.perf_counter() - started)
    return built, min(loads), report.counts


def run(console: Console) -> dict[str, Any]:
    results: dict[str, Any] = {}
    missing = [p for p in (BALTIMORE_PBF, BALTIMORE_BOUNDARY, MANHATTAN_PBF) if not p.exists()]
    if missing:
        console.print(f"geo_gazetteer: skipped, no shared data ({', '.join(map(str, missing))})")
        return {"skipped": "shared data absent"}
    with tempfile.TemporaryDirectory() as tmp:
        table = Table(title="gazetteer build and load", title_justify="left")
        for column in (
            "extract",
            "build s",
            "load s",
            "streets",
            "intersections",
            "addresses",
            "places",
            "neighbourhoods",
        ):
            table.add_column(column, justify="right")
        for name, pbf, options in (
            ("baltimore", BALTIMORE_PBF, {"boundary": BALTIMORE_BOUNDARY}),
            ("manhattan_midtown", MANHATTAN_PBF, {}),
        ):
            out = Path(tmp) / f"{name}.gazetteer"
            built, loaded, counts = _timed_build(pbf, out, **options)
            results[name] = {"build_s": round(built, 3), "load_s": round(loaded, 4), **counts}
            table.add_row(
                name,
                f"{built:.2f}",
                f"{loaded:.4f}",
                *(
                    str(counts[k])
                    for k in ("streets", "intersections", "addresses", "places", "neighbourhoods")
                ),
            )
        console.print(table)
        if BALTIMORE_311.exists():
            with Gazetteer.open(Path(tmp) / "baltimore.gazetteer") as gazetteer:
                scores = score_311(gazetteer, read_311())
            accuracy = Table(
                title="Baltimore 311 rows placed by the gazetteer", title_justify="left"
            )
            for column in (
                "kind",
                "rows",
                "streets covered",
                "resolved",
                "share",
                "median m",
                "p90 m",
                "by precision",
                "held there",
                "resolved",
                "share",
                "median m",
            ):
                accuracy.add_column(column, justify="right")
            for kind, score in scores.items():
                accuracy.add_row(
                    kind,
                    str(score.rows),
                    str(score.covered),
                    str(score.resolved),
                    f"{score.share:.0%}",
                    f"{score.median():.0f}",
                    f"{score.p90():.0f}",
                    ", ".join(f"{k} {v}" for k, v in sorted(score.by_precision.items())),
                    str(score.held),
                    str(len(score.held_errors_m)),
                    f"{score.held_share:.0%}",
                    f"{score.held_median():.0f}",
                )
            console.print(accuracy)
            results["baltimore_311"] = {k: s.as_dict() for k, s in scores.items()}
    return results
