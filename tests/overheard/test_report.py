"""`overheard replay --report DIR`: the GeoJSON, the summary, the map and the HTML page,
byte-identical across runs, and the page rendered by headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib import image
from rich.console import Console
from typer.testing import CliRunner

from overheard.cli import app
from overheard.ingest.archive import Position
from overheard.mapping import CLUSTER, category_colours
from overheard.paths import CONFIG_DIR
from overheard.progress import ReplayProgress
from overheard.summary import Summary

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"
FILES = ("issues.geojson", "summary.json", "map.png", "report.html")
#: Baltimore City, generously: every located issue lies inside.
WEST, SOUTH, EAST, NORTH = -76.72, 39.19, -76.52, 39.38
CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = "<script>alert('owned')</script>"

#: (id, title, text, minutes after the first): residents' complaints naming streets in
#: the east of the city (where the shared extract has streets), and posts about nothing.
POSTS = [
    (
        "t3_rp001",
        "Pothole on Eastern Ave",
        "There's a huge pothole on Eastern Ave at S Ponca St that has been there for weeks. "
        "Blew out my tire this morning. Can someone fix this already?",
    ),
    (
        "t3_rp002",
        "Streetlight out",
        "The streetlight at Fleet St and S Conkling St has been out for a month, the whole "
        "block is pitch dark at night.",
    ),
    (
        "t3_rp003",
        "Trash dumped again",
        "Someone dumped a pile of mattresses and trash in the alley behind 3400 Fleet St "
        "again. Rats everywhere.",
    ),
    (
        "t3_rp004",
        "Graffiti on Monument",
        f"{SCRIPT} Fresh graffiti all over the wall on E Monument St, third time this month.",
    ),
    (
        "t3_rp005",
        "Water everywhere",
        "Water main break on S Highland Ave, water has been gushing down the street since 6am.",
    ),
    ("t3_rp006", "Crab cakes", "Where do I get the best crab cakes in town? Visiting next week."),
    ("t3_rp007", "O's tonight", "Anyone going to the Orioles game tonight? Great weather for it."),
]


def _archive(path: Path, posts: list[tuple[str, str, str]] = POSTS) -> Path:
    """The posts as a Reddit CSV dump, in the columns of the shared sample."""
    with SAMPLE.open(newline="", encoding="utf-8") as sample:
        header = next(csv.reader(sample))
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, header, restval="")
        writer.writeheader()
        for minute, (native, title, text) in enumerate(posts):
            writer.writerow(
                {
                    "created_utc": f"{1367292011 + 60 * minute}.0",
                    "id": native.removeprefix("t3_"),
                    "name": native,
                    "title": title,
                    "selftext": text,
                    "permalink": f"http://www.reddit.com/r/baltimore/comments/{native[3:]}/",
                    "domain": "self.baltimore",
                    "subreddit_id": "t5_2qh2b",
                    "is_self": "True",
                    "score": "10",
                }
            )
    return path


@pytest.fixture(scope="module")
def gazetteer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One gazetteer build for the module (the first replay builds it)."""
    return tmp_path_factory.mktemp("gazetteer")


def _replay(archive: Path, report: Path, gazetteer: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        app,
        ["replay", str(archive), "--sink", "jsonl", "--report", str(report), "--json"],
        env={
            "OVERHEARD_MODELS__ENABLED": "false",
            "OVERHEARD_GEO__GAZETTEER_DIR": str(gazetteer),
            "OVERHEARD_JSONL__DIRECTORY": str(report.parent / f"{report.name}-jsonl"),
            "OVERHEARD_AUDIT__URL": f"sqlite:///{report.parent / f'{report.name}-audit.db'}",
        },
    )
    assert result.exit_code == 0, result.output
    assert "replaying" not in result.output  # no progress: stderr is not a terminal
    # With --json, stdout is the summary alone; the report's path goes to stderr.
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, gazetteer_dir: Path) -> list[Path]:
    """The complaints archive replayed twice, each time into its own report folder."""
    root = tmp_path_factory.mktemp("report")
    archive = _archive(root / "complaints.csv")
    folders = [root / "first", root / "second"]
    for folder in folders:
        _replay(archive, folder, gazetteer_dir)
    return folders


@pytest.fixture(scope="module")
def collection(reports: list[Path]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((reports[0] / "issues.geojson").read_text())
    return document


def test_the_report_folder_holds_the_four_files(reports: list[Path]) -> None:
    assert sorted(p.name for p in reports[0].iterdir()) == sorted(FILES)


def test_located_issues_are_points_inside_the_city(collection: dict[str, Any]) -> None:
    assert collection["type"] == "FeatureCollection"
    assert collection["city"] == "Baltimore"
    features = collection["features"]
    assert len(features) >= 4, [f["properties"]["place"] for f in features]
    for feature in features:
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "Point"
        lon, lat = feature["geometry"]["coordinates"]
        assert WEST < lon < EAST and SOUTH < lat < NORTH
        properties = feature["properties"]
        assert feature["id"] == properties["id"]
        assert properties["precision"] in {"address", "intersection", "street"}
        assert properties["post_url"].startswith("http://www.reddit.com/r/baltimore/")
        assert properties["created_at"].startswith("2013-04-30T")
        assert properties["explanation"] and properties["category"]
        assert set(properties) >= {"service_code", "urgent", "streets", "neighbourhood"}
    for unlocated in collection["unlocated"]:
        assert unlocated["precision"] is None
    places = {f["properties"]["post_id"]: f["properties"] for f in features}
    eastern = places["reddit:t3_rp001"]
    assert eastern["precision"] == "intersection"
    assert set(eastern["streets"]) == {"Eastern Avenue", "South Ponca Street"}


def test_issues_are_listed_in_post_time_order(collection: dict[str, Any]) -> None:
    listed = [f["properties"] for f in collection["features"]] + collection["unlocated"]
    assert all(p["post_id"].startswith("reddit:t3_rp00") for p in listed)
    located_times = [p["created_at"] for p in listed[: len(collection["features"])]]
    assert located_times == sorted(located_times)


def test_the_summary_names_streets_and_neighbourhoods(reports: list[Path]) -> None:
    summary = json.loads((reports[0] / "summary.json").read_text())
    assert summary["posts_read"] == len(POSTS)
    assert {
        "stopped_by_prefilter_share",
        "issues_by_category",
        "issues_by_precision",
        "deadletters",
        "top_streets",
        "top_neighbourhoods",
    } <= set(summary)
    assert 0 < summary["stopped_by_prefilter_share"] <= 1
    # Fleet Street: the intersection with Conkling and the address on it.
    assert summary["top_streets"][0] == {"name": "Fleet Street", "issues": 2}
    streets = {top["name"] for top in summary["top_streets"]}
    assert {"Eastern Avenue", "South Ponca Street", "South Highland Avenue"} <= streets
    ranked = [(-top["issues"], top["name"]) for top in summary["top_streets"]]
    assert ranked == sorted(ranked)
    assert sum(top["issues"] for top in summary["top_neighbourhoods"]) == 5
    assert {"Greektown", "Highlandtown", "Canton"} <= {
        top["name"] for top in summary["top_neighbourhoods"]
    }


def test_two_replays_write_the_same_bytes(reports: list[Path]) -> None:
    first, second = reports
    for name in FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_post_text_is_escaped_in_the_page(reports: list[Path]) -> None:
    page = (reports[0] / "report.html").read_text()
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()


def test_the_map_is_a_png_of_the_city(reports: list[Path]) -> None:
    picture = _bytes(image.imread(reports[0] / "map.png"))
    assert picture.shape[:2] == (900, 900)
    assert len(_colours(picture)) > 50


def test_a_ctrl_c_while_the_report_is_written_leaves_whole_files(
    tmp_path: Path, gazetteer_dir: Path, reports: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted while the map is drawn (after the replay itself), the command says so in
    one line and exits 130; the folder keeps the earlier report's files, whole."""
    folder = tmp_path / "report"
    shutil.copytree(reports[0], folder)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    def interrupted(*_args: Any) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr("overheard.report.draw_map", interrupted)
    archive = _archive(tmp_path / "complaints.csv", POSTS[:2])
    result = CliRunner().invoke(
        app,
        ["replay", str(archive), "--sink", "jsonl", "--report", str(folder)],
        env={
            "OVERHEARD_MODELS__ENABLED": "false",
            "OVERHEARD_GEO__GAZETTEER_DIR": str(gazetteer_dir),
            "OVERHEARD_JSONL__DIRECTORY": str(tmp_path / "jsonl"),
            "OVERHEARD_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}",
        },
    )
    assert result.exit_code == 130
    assert "replay interrupted while writing its report" in result.output
    assert "Traceback" not in result.output
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_the_shared_sample_replays_into_a_report(tmp_path: Path, gazetteer_dir: Path) -> None:
    summary = _replay(SAMPLE, tmp_path / "sample", gazetteer_dir)
    collection = json.loads((tmp_path / "sample" / "issues.geojson").read_text())
    assert summary["posts_read"] == 1000
    assert len(collection["features"]) + len(collection["unlocated"]) == summary["issues"]
    assert summary["issues_written"]["report"] == summary["issues"]


# -- the page in headless Chromium --------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        subprocess.run(
            ["sh", str(Path(__file__).parents[1] / "support" / "ensure-services.sh")], check=False
        )
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (tests/support/ensure-services.sh needs root)")
    return CHROMIUM


def _browse(chromium: Path, profile: Path, *how: str) -> subprocess.CompletedProcess[str]:
    """Chromium headless on the page, with no network service it could reach for."""
    return subprocess.run(
        [
            str(chromium),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *how,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def screenshot(
    chromium: Path, reports: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("chromium")
    shot = work / "shot.png"
    page = (reports[0] / "report.html").resolve()
    done = _browse(
        chromium,
        work / "profile",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        f"file://{page}",
    )
    assert shot.exists(), done.stderr[-2000:]
    yield shot
    shutil.rmtree(work / "profile", ignore_errors=True)


def test_chromium_shows_the_report_with_its_map(
    screenshot: Path, reports: list[Path], collection: dict[str, Any]
) -> None:
    shot = _bytes(image.imread(screenshot))
    assert shot.shape[:2] == (2000, 1200)
    assert len(_colours(shot)) > 50, "the screenshot is blank"
    # The page shows the map at its own size: the city's fill (the map's most common
    # colour) spans a box of the same size in the screenshot as in map.png.
    drawn = _bytes(image.imread(reports[0] / "map.png"))
    land = max(_colours(drawn).items(), key=lambda item: item[1])[0]
    assert land == (0xF3, 0xEF, 0xE6)
    top, left, bottom, right = _box(shot, land)
    expected = _box(drawn, land)
    assert abs((bottom - top) - (expected[2] - expected[0])) <= 2
    assert abs((right - left) - (expected[3] - expected[1])) <= 2
    assert 300 < top < bottom < 1900  # below the summary table
    region = shot[top:bottom, left:right]
    assert len(_colours(region)) > 200  # streets, boundary, legend: not a flat fill
    # Every located category's dots, in its legend colour, inside that box.
    categories = {f["properties"]["category"] for f in collection["features"]}
    for category, colour in category_colours(categories).items():
        rgb = (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))
        assert _colours(region).get(rgb, 0) >= 20, category


def _box(pixels: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the pixels of one colour."""
    rows, columns = np.nonzero(np.all(pixels == colour, axis=-1))
    return int(rows.min()), int(columns.min()), int(rows.max()), int(columns.max())


def test_chromium_dom_holds_every_issue_without_scripts(
    chromium: Path, reports: list[Path], collection: dict[str, Any], tmp_path: Path
) -> None:
    page = (reports[0] / "report.html").resolve()
    done = _browse(chromium, tmp_path / "profile", "--dump-dom", f"file://{page}")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    issues = collection["features"] + [{"properties": p} for p in collection["unlocated"]]
    for issue in issues:
        assert f'id="issue-{issue["properties"]["id"]}"' in dom
    assert dom.count('<li class="issue"') == len(issues)
    assert "Eastern Ave at S Ponca St" in dom
    assert "&lt;script&gt;alert('owned')&lt;/script&gt;" in dom
    assert "<script" not in dom.lower()


def _bytes(pixels: np.ndarray) -> np.ndarray:
    """RGB(A) floats in [0, 1], as matplotlib reads a PNG, to 0–255 RGB integers."""
    return np.rint(pixels[..., :3] * 255).astype(np.uint8)


def _colours(pixels: np.ndarray) -> dict[tuple[int, int, int], int]:
    """How many pixels show each colour of an RGB integer image."""
    flat = pixels.reshape(-1, 3)
    found, counts = np.unique(flat, axis=0, return_counts=True)
    return {(int(r), int(g), int(b)): int(n) for (r, g, b), n in zip(found, counts, strict=True)}


def test_the_page_refers_to_nothing_outside_itself(reports: list[Path]) -> None:
    page = (reports[0] / "report.html").read_text()
    assert 'src="data:image/png;base64,' in page
    assert "default-src 'none'" in page  # the browser would refuse to fetch anything
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert all(
        s.startswith(("data:image/png;base64,", "http://www.reddit.com/r/baltimore/"))
        for s in sources
    )
    assert sum(s.startswith("data:") for s in sources) == 1
    assert not re.search(r"<link|<script|@import|url\(", page, re.IGNORECASE)


def test_progress_is_drawn_on_a_terminal_only(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "complaints.csv")
    summary = Summary()
    summary.read(7)
    for terminal in (True, False):
        screen = io.StringIO()
        console = Console(file=screen, force_terminal=terminal, width=150)
        with ReplayProgress([archive], summary, console) as progress:
            progress.advance(Position(str(archive.resolve()), archive.stat().st_size // 2))
        shown = screen.getvalue()
        if terminal:
            assert "replaying" in shown and "7 posts" in shown
            assert "0 issues, 0 dead letters" in shown
        else:
            assert shown == ""


# -- clusters -------------------------------------------------------------------------------

#: Three residents report the same pothole within the hour; another pothole 2 km away.
SAME_POTHOLE = [
    (
        f"t3_cl00{n}",
        "Pothole on Eastern Ave",
        f"{opening} pothole on Eastern Ave at S Ponca St, nobody has fixed it for weeks.",
    )
    for n, opening in enumerate(("Huge", "Another car lost a hubcap in the", "Still a"), 1)
]


def _cluster_colour_pixels(png: Path) -> int:
    """How many pixels of the map have the rings' colour (`mapping.CLUSTER`)."""
    picture = _bytes(image.imread(png))[..., :3].astype(int)
    target = np.array([int(CLUSTER[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(picture - target).sum(axis=-1) < 12).sum())


def test_a_replay_groups_reports_of_one_problem(tmp_path: Path, gazetteer_dir: Path) -> None:
    """Three more reports of the pothole at Eastern Ave and S Ponca St (rp001) within the
    hour: one problem of four reports."""
    archive = _archive(tmp_path / "cluster.csv", [*SAME_POTHOLE, *POSTS])
    summaries = [_replay(archive, tmp_path / name, gazetteer_dir) for name in ("a", "b")]
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    summary = summaries[0]
    assert summary["clusters"] == {
        "problems": summary["issues"] - 3,
        "multi_report": 1,
        "largest": 4,
    }
    assert (
        json.loads((tmp_path / "a" / "summary.json").read_text())["clusters"]
        == (summary["clusters"])
    )
    collection = json.loads((tmp_path / "a" / "issues.geojson").read_text())
    properties = {f["properties"]["post_id"]: f["properties"] for f in collection["features"]}
    first = properties["reddit:t3_cl001"]
    assert (first["cluster"], first["cluster_size"]) == (first["id"], 4)
    grouped = {k for k, p in properties.items() if p["cluster"] == first["id"]}
    assert grouped == {"reddit:t3_cl001", "reddit:t3_cl002", "reddit:t3_cl003", "reddit:t3_rp001"}
    for key, found in properties.items():
        if key not in grouped:
            assert (found["cluster"], found["cluster_size"]) == (found["id"], 1)
    page = (tmp_path / "a" / "report.html").read_text()
    assert page.count("4 reports of one problem") == 4
    assert page.count("4 reports of one problem (first: reddit:t3_cl001)") == 3
    assert "problems (clusters of reports)" in page
    assert _cluster_colour_pixels(tmp_path / "a" / "map.png") > 30


def test_the_map_rings_only_problems_with_several_reports(reports: list[Path]) -> None:
    """The complaints archive has no two reports of one problem: no ring."""
    collection = json.loads((reports[0] / "issues.geojson").read_text())
    listed = [f["properties"] for f in collection["features"]] + collection["unlocated"]
    assert all(p["cluster"] == p["id"] and p["cluster_size"] == 1 for p in listed)
    assert _cluster_colour_pixels(reports[0] / "map.png") == 0
    summary = json.loads((reports[0] / "summary.json").read_text())
    assert summary["clusters"] == {
        "problems": summary["issues"],
        "multi_report": 0,
        "largest": 1,
    }
