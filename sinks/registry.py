"""Finding sinks by name through the entry-point group `overheard.sinks`.

Built-in sinks register through the same group as third-party ones (as
datasette and pluggy do), so there is one way in. An entry point names a
factory: a callable that takes the `Settings` and returns a `Sink`.

A sink that fails to load (its package is broken, or names a module or
attribute that is not there) never hides the others: `discover` reports, per
entry point, where it came from and the error, and `overheard sinks list`
shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from overheard.errors import ConfigError
from overheard.sinks.base import Sink

if TYPE_CHECKING:
    from overheard.settings import Settings

GROUP = "overheard.sinks"

Factory = Callable[["Settings"], Sink]


@dataclass(frozen=True)
class Found:
    """One entry point of the group, and what loading it gave."""

    name: str
    entry_point: EntryPoint
    #: The loaded factory, when it was loaded and loading worked.
    factory: Factory | None = None
    #: Why it cannot be used ("ModuleNotFoundError: No module named 'x'"), or None.
    error: str | None = None

    @property
    def package(self) -> str:
        """The distribution that declares it."""
        return self.entry_point.dist.name if self.entry_point.dist else "?"

    @property
    def version(self) -> str:
        return self.entry_point.dist.version if self.entry_point.dist else "?"

    @property
    def value(self) -> str:
        """Where it points: `module:attr`."""
        return self.entry_point.value

    @property
    def ok(self) -> bool:
        return self.error is None

    def load(self) -> Found:
        """This entry point with its factory loaded, or with the error that stopped it."""
        if self.factory is not None or self.error is not None:
            return self
        try:
            loaded: Any = self.entry_point.load()
        except Exception as exc:  # noqa: BLE001 - any import-time failure is reported
            return Found(self.name, self.entry_point, error=_describe(exc))
        if not callable(loaded):
            error = f"{self.value} is a {type(loaded).__name__}, not a factory of sinks"
            return Found(self.name, self.entry_point, error=error)
        return Found(self.name, self.entry_point, factory=loaded)


def discover(*, load: bool = True) -> dict[str, Found]:
    """Every sink of the group, by name; each loaded (unless `load` is false) on its own,
    so one that fails carries its error and the others still load.

    A name that two distributions declare is not guessed between: both lose it.
    """
    found: dict[str, Found] = {}
    declared_by: dict[str, list[str]] = {}
    for entry_point in entry_points(group=GROUP):
        candidate = Found(entry_point.name, entry_point)
        declared_by.setdefault(candidate.name, []).append(
            f"{candidate.package} ({candidate.value})"
        )
        found.setdefault(candidate.name, candidate)
    for name, sources in declared_by.items():
        if len(sources) > 1:
            error = f"the name is declared more than once: by {' and by '.join(sources)}"
            found[name] = Found(name, found[name].entry_point, error=error)
        elif load:
            found[name] = found[name].load()
    return dict(sorted(found.items()))


def create_sink(name: str, settings: Settings) -> Sink:
    """The sink `name`, made by its factory from `settings` (only that entry point is
    loaded), wrapped in `overheard.privacy.PrivateSink` (its `inner` is the factory's)."""
    found = discover(load=False)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"sinks: no sink named {name!r} is installed (found: {known})")
    chosen = found[name].load()
    if chosen.factory is None:
        raise ConfigError(
            f"sinks: {name!r} ({chosen.value}, from {chosen.package} {chosen.version}) "
            f"cannot be loaded: {chosen.error}"
        )
    sink = chosen.factory(settings)
    if not isinstance(sink, Sink):
        raise ConfigError(f"sinks: {name!r} ({chosen.value}) is not a Sink")
    # Every sink the runtime makes gets pseudonymised authors and an audit trail.
    from overheard.privacy import guard

    return guard(sink, settings)


def _describe(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
