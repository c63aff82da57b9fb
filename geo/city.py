"""A city's gazetteer, built from its profile's extract on first use and kept up to date."""

from __future__ import annotations

import logging
from pathlib import Path

from overheard.geo.build import BUILD_VERSION, build_gazetteer
from overheard.geo.gazetteer import Gazetteer, GazetteerError
from overheard.geo.geocoder import AnswerCache, NominatimFallback
from overheard.geo.locate import Locator
from overheard.paths import CONFIG_DIR
from overheard.profile import CityProfile
from overheard.settings import GeoSettings

log = logging.getLogger(__name__)


def gazetteer_path(profile: CityProfile, directory: Path) -> Path | None:
    """The city's gazetteer file, (re)built when missing, older than its sources or
    built by an older version of the build (`BUILD_VERSION`).

    None when the profile names no extract.
    """
    if profile.geo is None:
        return None
    geo = profile.geo.resolved(CONFIG_DIR)
    target = directory / f"{profile.name}.gazetteer.sqlite"
    sources = [geo.extract, *([geo.boundary] if geo.boundary else [])]
    newest = max(source.stat().st_mtime for source in sources)
    if not target.exists() or target.stat().st_mtime < newest or _built_before(target):
        log.info("building the %s gazetteer from %s", profile.name, geo.extract)
        directory.mkdir(parents=True, exist_ok=True)
        build_gazetteer(geo.extract, target, boundary=geo.boundary, block_size=geo.block_size)
    return target


def _built_before(path: Path) -> bool:
    try:
        with Gazetteer.open(path) as gazetteer:
            return gazetteer.meta.get("build_version") != str(BUILD_VERSION)
    except GazetteerError:
        return True  # unreadable or another format: build it again


def locator_for(
    profile: CityProfile, directory: Path, settings: GeoSettings | None = None
) -> Locator | None:
    """A Locator over the city's gazetteer, or None when the profile names no extract;
    with the geocoder the settings name (none unless they say `geocoder = "nominatim"`)."""
    path = gazetteer_path(profile, directory)
    if path is None:
        return None
    gazetteer = Gazetteer.open(path)
    geocoder = None
    if settings is not None and settings.geocoder == "nominatim":
        geocoder = nominatim_for(profile, gazetteer, settings)
    return Locator(gazetteer, city_names=profile.city.names, geocoder=geocoder)


def nominatim_for(
    profile: CityProfile, gazetteer: Gazetteer, settings: GeoSettings
) -> NominatimFallback:
    """Nominatim bounded to the city's boundary box (the gazetteer's)."""
    west, south, east, north = gazetteer.boundary_bounds()
    return NominatimFallback(
        user_agent=settings.geocoder_user_agent,
        city=profile.city.display_name,
        viewbox=((south, west), (north, east)),
        contains=gazetteer.contains,
        cache=AnswerCache(settings.geocoder_cache),
        countrycodes=settings.geocoder_countrycodes,
        domain=settings.geocoder_domain,
        min_delay_s=settings.geocoder_min_delay_s,
        timeout_s=settings.geocoder_timeout_s,
        retries=settings.geocoder_retries,
        budget_s=settings.geocoder_budget_s,
    )
