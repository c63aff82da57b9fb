"""A city's gazetteer, built from its profile's extract on first use and kept up to date."""

from __future__ import annotations

import logging
from pathlib import Path

from overheard.geo.build import build_gazetteer
from overheard.geo.gazetteer import Gazetteer
from overheard.geo.locate import Locator
from overheard.paths import CONFIG_DIR
from overheard.profile import CityProfile

log = logging.getLogger(__name__)


def gazetteer_path(profile: CityProfile, directory: Path) -> Path | None:
    """The city's gazetteer file, (re)built when missing or older than its sources.

    None when the profile names no extract.
    """
    if profile.geo is None:
        return None
    geo = profile.geo.resolved(CONFIG_DIR)
    target = directory / f"{profile.name}.gazetteer.sqlite"
    sources = [geo.extract, *([geo.boundary] if geo.boundary else [])]
    newest = max(source.stat().st_mtime for source in sources)
    if not target.exists() or target.stat().st_mtime < newest:
        log.info("building the %s gazetteer from %s", profile.name, geo.extract)
        directory.mkdir(parents=True, exist_ok=True)
        build_gazetteer(geo.extract, target, boundary=geo.boundary, block_size=geo.block_size)
    return target


def locator_for(profile: CityProfile, directory: Path) -> Locator | None:
    """A Locator over the city's gazetteer, or None when the profile names no extract."""
    path = gazetteer_path(profile, directory)
    if path is None:
        return None
    return Locator(Gazetteer.open(path), city_names=profile.city.names)
