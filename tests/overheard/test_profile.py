from pathlib import Path

import pytest

from overheard.errors import ConfigError
from overheard.profile import load_profile, profile_path

SHARED_311 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "311"


def test_baltimore_profile_loads_by_name() -> None:
    profile = load_profile("baltimore")
    assert profile.name == "baltimore"
    assert "Baltimore311" in profile.accounts.x
    assert profile.categories["pothole"].service_code == "TRM-Pothole Repair"
    assert profile.community.subreddits == ["baltimore"]


def test_profile_path_takes_a_name_or_a_path(tmp_path: Path) -> None:
    assert profile_path("baltimore").name == "baltimore.toml"
    assert profile_path(str(tmp_path / "x.toml")) == tmp_path / "x.toml"


def test_service_codes_are_real_baltimore_311_types() -> None:
    """Every service code in the profile occurs as an SRType in real Baltimore 311 data."""
    export = SHARED_311 / "baltimore311-2019-10-bbox.csv"
    if not export.exists():
        pytest.skip(f"{export} is absent (shared data is not in this clone)")
    import csv

    with export.open(newline="") as handle:
        types = {row["SRType"] for row in csv.DictReader(handle)}
    for key, category in load_profile("baltimore").categories.items():
        if category.service_code is not None:
            assert category.service_code in types, key


def test_a_broken_profile_names_file_and_key(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "config/cities/baltimore.toml").read_text()
    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace('name = "baltimore"', 'name = "Baltimore City"'))
    with pytest.raises(ConfigError, match=rf"{broken}: city.name: String should match pattern"):
        load_profile(str(broken))


def test_the_clusters_section_is_read_and_checked(tmp_path: Path) -> None:
    clusters = load_profile("baltimore").clusters
    assert (clusters.distance_m, clusters.window_hours) == (60, 168)
    assert [p.value for p in clusters.precisions] == [
        "address",
        "intersection",
        "place",
        "platform_geotag",
    ]
    text = (Path(__file__).resolve().parents[2] / "config/cities/baltimore.toml").read_text()
    for right, wrong, message in (
        ("distance_m = 60", "distance_m = 0", r"clusters.distance_m: Input should be greater"),
        ('"platform_geotag"]', '"platform_geotag", "ward"]', r"clusters.precisions.4: Input"),
    ):
        broken = tmp_path / "broken.toml"
        broken.write_text(text.replace(right, wrong))
        with pytest.raises(ConfigError, match=rf"{broken}: {message}"):
            load_profile(str(broken))
