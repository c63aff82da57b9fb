"""Finding sinks by name through the entry-point group `overheard.sinks`.

Built-in sinks register through the same group as third-party ones (as
datasette and pluggy do), so there is one way in. An entry point names a
factory: a callable that takes the `Settings` and returns a `Sink`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from overheard.errors import ConfigError
from overheard.sinks.base import Sink

if TYPE_CHECKING:
    from overheard.settings import Settings

GROUP = "overheard.sinks"


@dataclass(frozen=True)
class Found:
    name: str
    entry_point: EntryPoint

    @property
    def package(self) -> str:
        return self.entry_point.dist.name if self.entry_point.dist else "?"

    @property
    def version(self) -> str:
        return self.entry_point.dist.version if self.entry_point.dist else "?"


def discover() -> dict[str, Found]:
    return {ep.name: Found(ep.name, ep) for ep in entry_points(group=GROUP)}


def create_sink(name: str, settings: Settings) -> Sink:
    found = discover()
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"sinks: no sink named {name!r} is installed (found: {known})")
    factory = found[name].entry_point.load()
    sink = factory(settings)
    if not isinstance(sink, Sink):
        raise ConfigError(f"sinks: {name!r} ({found[name].entry_point.value}) is not a Sink")
    return sink
