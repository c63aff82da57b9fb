"""Where the shared real data lies (the folder beside the repo), and skipping without it."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
BALTIMORE_PBF = DATA / "osm" / "baltimore.osm.pbf"
BALTIMORE_BOUNDARY = DATA / "boundaries" / "baltimore_city.geojson"
MANHATTAN_PBF = DATA / "osm" / "manhattan_midtown.osm.pbf"
BALTIMORE_311 = DATA / "311" / "baltimore311-2019-10-bbox.csv"


def need(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"shared data absent: {', '.join(missing)}")
