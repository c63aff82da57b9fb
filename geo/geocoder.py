"""Asking Nominatim (through geopy) about what the gazetteer cannot place.

Off unless the settings say `geo.geocoder = "nominatim"`: the gazetteer answers offline,
this asks a public service. When on:

- geopy's `Nominatim` with the configured user agent, searching only inside the city's
  bounding box (`viewbox`, `bounded`) and the configured countries;
- geopy's `RateLimiter` keeps requests at least `min_delay_s` apart (1 s: the public
  service's policy);
- every answer (a result, or none) is kept in a SQLite file, so a query is asked once;
  errors are not kept;
- a rate limit (429, honouring Retry-After), a timeout or an unavailable service is
  retried with exponential backoff while the post's budget (`budget_s`) lasts, then the
  post keeps the gazetteer's precision and the reason says why;
- a result outside the city boundary is not used, and its type sets the precision: a
  house or building is an address, a road a street, an amenity or other named feature
  a place, a suburb or neighbourhood a neighbourhood; anything larger says nothing the
  city's name does not.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geopy.adapters import RequestsAdapter
from geopy.exc import (
    GeocoderRateLimited,
    GeocoderServiceError,
    GeocoderTimedOut,
    GeocoderUnavailable,
)
from geopy.extra.rate_limiter import RateLimiter
from geopy.geocoders import Nominatim

from overheard.model import Precision

_HOUSE_TYPES = frozenset({"house", "building", "apartments", "residential", "yes"})
_AREA_TYPES = frozenset({"neighbourhood", "suburb", "quarter", "city_block", "hamlet"})
#: Feature classes that name a spot (an amenity, a shop, a stop, a park).
_SPOT_CLASSES = frozenset(
    {"amenity", "shop", "tourism", "leisure", "railway", "public_transport", "historic"}
)


@dataclass(frozen=True)
class Geocoded:
    """One usable answer: where, how precisely, and what the service called it."""

    lat: float
    lon: float
    precision: Precision
    name: str
    kind: str


@dataclass(frozen=True)
class Answer:
    """What the geocoder made of one query: a place (or None) and why."""

    found: Geocoded | None
    reason: str


class Budget:
    """The time a post may spend on the geocoder, rate-limit waits included."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deadline = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._deadline - self._clock())


class AnswerCache:
    """Nominatim's raw results by query, in SQLite: asked once, kept across restarts."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers (provider TEXT, query TEXT, results TEXT, "
                "asked_at REAL, PRIMARY KEY (provider, query))"
            )

    def get(self, provider: str, query: str) -> list[dict[str, Any]] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT results FROM answers WHERE provider = ? AND query = ?", (provider, query)
            ).fetchone()
        return None if row is None else list(json.loads(row[0]))

    def put(self, provider: str, query: str, results: list[dict[str, Any]]) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                (provider, query, json.dumps(results), time.time()),
            )

    def close(self) -> None:
        self._db.close()


def precision_of(raw: dict[str, Any]) -> Precision | None:
    """The precision a Nominatim result gives, from its class, type and rank; None for
    a town, a county or anything else no finer than the city."""
    cls = raw.get("class") or raw.get("category") or ""
    kind = raw.get("type") or ""
    rank = int(raw.get("place_rank") or 0)
    if cls == "building" or (cls == "place" and kind in _HOUSE_TYPES):
        return Precision.ADDRESS
    if cls == "highway":
        return Precision.PLACE if kind in ("bus_stop", "traffic_signals") else Precision.STREET
    if cls == "place" and kind in _AREA_TYPES:
        return Precision.NEIGHBOURHOOD
    if cls in _SPOT_CLASSES or rank >= 28:
        return Precision.PLACE
    return None


def _adapter_without_retries(*, proxies: Any, ssl_context: Any) -> RequestsAdapter:
    """geopy's requests adapter with urllib3's own retries off: urllib3 would otherwise
    wait out a 429's Retry-After itself, outside the post's budget."""
    return RequestsAdapter(proxies=proxies, ssl_context=ssl_context, max_retries=0)


class NominatimFallback:
    """Nominatim, bounded to one city, cached, rate-limited, retried within a budget."""

    provider = "nominatim"

    def __init__(
        self,
        *,
        user_agent: str,
        city: str,
        viewbox: tuple[tuple[float, float], tuple[float, float]],
        contains: Callable[[float, float], bool],
        cache: AnswerCache,
        countrycodes: list[str],
        domain: str = "nominatim.openstreetmap.org",
        min_delay_s: float = 1.0,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        budget_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.city = city
        self.viewbox = viewbox
        self.countrycodes = countrycodes
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.budget_s = budget_s
        self.min_delay_s = min_delay_s
        self._contains = contains
        self._cache = cache
        self._sleep = sleep
        self._clock = clock
        self._nominatim = Nominatim(
            user_agent=user_agent,
            domain=domain,
            timeout=timeout_s,
            adapter_factory=_adapter_without_retries,
        )
        # Errors are handled here (retried within the budget), not by the limiter.
        self.limited = RateLimiter(
            self._nominatim.geocode,
            min_delay_seconds=min_delay_s,
            max_retries=0,
            swallow_exceptions=False,
        )

    def budget(self) -> Budget:
        """A fresh budget, one per post."""
        return Budget(self.budget_s, self._clock)

    def geocode(self, text: str, budget: Budget) -> Answer:
        query = f"{text}, {self.city}"
        results = self._cache.get(self.provider, query)
        asked = "cached"
        if results is None:
            fetched = self._ask(query, budget)
            if isinstance(fetched, str):
                return Answer(None, f"Nominatim could not answer '{query}': {fetched}")
            results, asked = fetched, "asked"
            self._cache.put(self.provider, query, results)
        if not results:
            return Answer(None, f"Nominatim ({asked}) knows no '{query}' inside the city's box")
        raw = results[0]
        lat, lon = float(raw["lat"]), float(raw["lon"])
        name = str(raw.get("display_name", query))
        kind = f"{raw.get('class') or raw.get('category')}={raw.get('type')}"
        precision = precision_of(raw)
        if precision is None:
            return Answer(None, f"Nominatim ({asked}) placed '{query}' only as {kind} ({name})")
        if not self._contains(lat, lon):
            return Answer(
                None,
                f"Nominatim ({asked}) placed '{query}' at {name}, outside the city boundary: "
                "not used",
            )
        found = Geocoded(lat, lon, precision, name, kind)
        return Answer(found, f"Nominatim ({asked}) placed '{text}' at {name} ({kind})")

    def _ask(self, query: str, budget: Budget) -> list[dict[str, Any]] | str:
        """The raw results, or why there are none (budget spent, service error)."""
        why = "the post's geocoding budget was spent"
        for attempt in range(self.retries + 1):
            remaining = budget.remaining()
            if remaining < self.min_delay_s or remaining <= 0:
                return why
            try:
                location = self.limited(
                    query,
                    exactly_one=True,
                    timeout=min(self.timeout_s, remaining),
                    country_codes=self.countrycodes,
                    viewbox=self.viewbox,
                    bounded=True,
                )
            except (GeocoderRateLimited, GeocoderTimedOut, GeocoderUnavailable) as exc:
                wait = self.backoff_s * 2**attempt
                if isinstance(exc, GeocoderRateLimited) and exc.retry_after:
                    wait = max(wait, float(exc.retry_after))
                why = f"{type(exc).__name__} ({exc}) after {attempt + 1} attempt(s)"
                if attempt == self.retries or wait >= budget.remaining():
                    return f"{why}; the post's geocoding budget does not allow another"
                self._sleep(wait)
                continue
            except GeocoderServiceError as exc:
                return f"{type(exc).__name__} ({exc}): not retried"
            return [] if location is None else [dict(location.raw)]
        return why
