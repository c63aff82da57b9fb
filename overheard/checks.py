"""`overheard check`: the configuration, the profile and every dependency, each reached once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from overheard.bus import topic_config
from overheard.bus.kafka import connection_options
from overheard.classify.datasets import missing_files
from overheard.classify.decide import Classifier
from overheard.classify.encoder import SHIPPED as SHIPPED_ENCODER
from overheard.classify.encoder import Encoder
from overheard.classify.textmodels import StaleModels, TextModels
from overheard.errors import ConfigError, ModelError, OverheardError
from overheard.geo.city import gazetteer_path
from overheard.geo.gazetteer import Gazetteer
from overheard.pipeline import topics_for
from overheard.profile import load_profile
from overheard.settings import Settings
from overheard.sinks.registry import create_sink


@dataclass(frozen=True)
class CheckResult:
    what: str
    ok: bool
    detail: str


def _attempt(what: str, action: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(what, True, action())
    except (OverheardError, KafkaError, OSError, ValueError) as exc:
        return CheckResult(what, False, f"{type(exc).__name__}: {exc}")


def reach_broker(settings: Settings, timeout_ms: int = 10_000) -> str:
    """List the broker's topics: raises when it cannot be reached (also /readyz's bus check)."""
    if settings.bus.kind == "memory":
        return "in-process bus: no broker needed"
    admin = KafkaAdminClient(
        **connection_options(settings.bus),
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        return f"{settings.bus.bootstrap_servers}: {len(admin.list_topics())} topics"
    finally:
        admin.close()


def check_topics(settings: Settings, timeout_ms: int = 10_000) -> str:
    """Whether the city's existing topics match `[bus]`: raises ConfigError naming each
    difference (`overheard.bus.topic_config` says which differences count)."""
    if settings.bus.kind == "memory":
        return "in-process bus: no topics"
    names = topics_for(settings, load_profile(settings.city)).all()
    admin = KafkaAdminClient(
        **connection_options(settings.bus),
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        states = topic_config.describe(admin, names)
    finally:
        admin.close()
    found = [problem for state in states for problem in topic_config.problems(state, settings.bus)]
    if found:
        raise ConfigError("; ".join(found))
    missing = [name for name in names if name not in {state.name for state in states}]
    described = [topic_config.summary(states)] if states else []
    if missing:
        described.append(f"{', '.join(missing)}: created on the first `overheard run`")
    return "; ".join(described)


def run_checks(settings: Settings) -> list[CheckResult]:
    results = [CheckResult("settings", True, "valid")]

    def profile() -> str:
        loaded = load_profile(settings.city)
        Classifier(loaded)
        return (
            f"{loaded.city.display_name} {loaded.city.version}, {len(loaded.categories)} categories"
        )

    results.append(_attempt("city profile", profile))

    def gazetteer() -> str:
        if not settings.geo.enabled:
            return "geo is off: issues carry no location"
        path = gazetteer_path(load_profile(settings.city), settings.geo.gazetteer_dir)
        if path is None:
            return "the profile names no extract: issues carry no location"
        counts = Gazetteer.open(path).counts()
        return f"{path}: " + ", ".join(f"{count} {name}" for name, count in counts.items())

    results.append(_attempt("gazetteer", gazetteer))

    def models() -> str:
        models = settings.models
        if not models.enabled:
            return "models are off: the profile's vocabulary decides alone"
        if not models.directory.is_dir() or not any(models.directory.iterdir()):
            if models.required:
                raise ModelError(f"no text models at {models.directory} (models.required)")
            if models.train_if_missing and not missing_files(models.data_dir):
                return f"none at {models.directory} yet: trained on first use, or run `make model`"
            if models.encoder:
                encoder = Encoder.load(SHIPPED_ENCODER)
                heads = (
                    "complaint, civic and the category"
                    if encoder.category
                    else "complaint and civic"
                )
                return (
                    f"none at {models.directory}, and no labelled data to train them: the "
                    f"shipped encoder {encoder.version} scores {heads} alone"
                )
            return f"none at {models.directory}: the profile's vocabulary decides alone"
        try:
            loaded = TextModels.load(models.directory, SHIPPED_ENCODER if models.encoder else None)
        except StaleModels:
            if not models.train_if_missing:
                raise
            return f"{models.directory}: of an older format, trained again on first use"
        return f"{models.directory}: {loaded.version}"

    results.append(_attempt("text models", models))

    results.append(_attempt("bus", lambda: reach_broker(settings)))
    results.append(_attempt("topics", lambda: check_topics(settings)))

    for name in settings.sinks:

        def sink(name: str = name) -> str:
            created = create_sink(name, settings)
            created.open()
            created.close()
            return "reachable"

        results.append(_attempt(f"sink {name}", sink))
    return results
