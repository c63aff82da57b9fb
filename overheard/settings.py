"""Settings: defaults < TOML file < environment (`OVERHEARD_*`) < command-line flags.

Secrets (passwords, tokens) are `SecretStr`: they come from the environment,
never reach a log, and are masked when the effective configuration is shown.
The file is validated on its own first, so a mistake in it is reported with the
file, the key and what was expected, before anything connects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url

from overheard.errors import ConfigError
from overheard.paths import CONFIG_DIR
from overheard.tomlfile import describe_validation, read_toml

DEFAULT_FILE = CONFIG_DIR / "default.toml"
ENV_PREFIX = "OVERHEARD_"

Positive = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BusSettings(_Section):
    kind: Literal["memory", "kafka"] = "memory"
    bootstrap_servers: str = "127.0.0.1:9092"
    #: Topics are named `<prefix>.<city>.<topic>`.
    topic_prefix: str = "overheard"
    posts_topic: str = "posts"
    issues_topic: str = "issues"
    deadletters_topic: str = "deadletters"
    partitions: Annotated[int, Field(ge=1)] = 3
    replication_factor: Annotated[int, Field(ge=1)] = 1
    client_id: str = "overheard"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    #: How many messages a stage takes from the bus at once.
    batch_size: Annotated[int, Field(ge=1)] = 500
    poll_timeout_s: Positive = 1.0
    session_timeout_ms: Annotated[int, Field(ge=1000)] = 10_000
    #: How long one request to a broker may take before it is retried.
    request_timeout_ms: Annotated[int, Field(ge=1000)] = 30_000
    #: How long the producer keeps trying to deliver a message before `flush` reports
    #: a transient failure (and the stage retries the whole batch).
    delivery_timeout_ms: Annotated[int, Field(ge=1000)] = 120_000


class DatabaseSettings(_Section):
    #: A SQLAlchemy URL; keep the password out of it and in `password`.
    url: str = "sqlite:///var/overheard.db"
    password: SecretStr | None = None

    def effective_url(self) -> str:
        url = make_url(self.url)
        if self.password is not None:
            url = url.set(password=self.password.get_secret_value())
        return url.render_as_string(hide_password=False)

    def shown_url(self) -> str:
        return make_url(self.effective_url()).render_as_string(hide_password=True)


class GeoSettings(_Section):
    #: Locate complaints with the city's gazetteer (built on first use from the profile's
    #: extract); off, issues carry no location.
    enabled: bool = True
    #: Where built gazetteers are kept, one file per city.
    gazetteer_dir: Path = Path("var/gazetteer")


class RetrySettings(_Section):
    """Exponential backoff with jitter for transient failures."""

    initial_s: Positive = 0.5
    max_s: Positive = 30.0
    multiplier: Annotated[float, Field(ge=1)] = 2.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.2


class IngestSettings(_Section):
    #: Where connectors keep their checkpoints.
    checkpoint_dir: Path = Path("var/checkpoints")
    #: Flush to the bus and advance the checkpoint every this many posts.
    checkpoint_every: Annotated[int, Field(ge=1)] = 500


class JsonlSettings(_Section):
    """The jsonl sink: one file per day (UTC) for analysts."""

    directory: Path = Path("var/jsonl")


class WebhookSettings(_Section):
    """The webhook sink: each issue POSTed as JSON, signed with HMAC-SHA256."""

    url: str | None = None
    #: The HMAC key; from the environment (OVERHEARD_WEBHOOK__SECRET), never a file.
    secret: SecretStr | None = None
    timeout_s: Positive = 10.0


class Open311Settings(_Section):
    """The open311 sink: GeoReport v2 service requests."""

    #: The endpoint's base URL, e.g. https://311.example.gov/open311/v2/
    endpoint: str | None = None
    #: From the environment (OVERHEARD_OPEN311__API_KEY), never a file.
    api_key: SecretStr | None = None
    jurisdiction_id: str | None = None
    #: Where the ledger (issue id → service request) lives.
    ledger_url: str = "sqlite:///var/open311-ledger.db"
    timeout_s: Positive = 30.0
    #: How many requests of a batch are in flight at once.
    concurrency: Annotated[int, Field(ge=1)] = 4


class Fields(BaseModel):
    """The settings' shape, shared by the file check and the full load."""

    model_config = ConfigDict(extra="forbid")

    #: The city profile: a name in config/cities/ or the path of a TOML file.
    city: str = "baltimore"
    bus: BusSettings = BusSettings()
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    geo: GeoSettings = GeoSettings()
    retry: RetrySettings = RetrySettings()
    jsonl: JsonlSettings = JsonlSettings()
    webhook: WebhookSettings = WebhookSettings()
    open311: Open311Settings = Open311Settings()
    #: The sinks issues are written to, by entry-point name.
    sinks: list[str] = ["sql"]


class Settings(BaseSettings, Fields):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )


def env_name(*path: str) -> str:
    """The environment variable behind a setting: env_name("bus", "kind") → OVERHEARD_BUS__KIND."""
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def settings_file() -> Path | None:
    """The file to read: $OVERHEARD_CONFIG, else config/default.toml when it exists."""
    if explicit := os.environ.get(ENV_PREFIX + "CONFIG"):
        return Path(explicit)
    return DEFAULT_FILE if DEFAULT_FILE.exists() else None


def load_settings(file: Path | None = None, flags: dict[str, Any] | None = None) -> Settings:
    """Read the settings in their order of precedence; raise ConfigError on any mistake."""
    path = file or settings_file()
    if path is not None:
        try:
            Fields.model_validate(read_toml(path))
        except ValidationError as exc:
            raise ConfigError(describe_validation(str(path), exc)) from exc

    class _Layered(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    try:
        return _Layered(**(flags or {}))
    except ValidationError as exc:
        raise ConfigError(
            describe_validation(f"environment ({ENV_PREFIX}*) or command line", exc)
        ) from exc


def shown(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, with every secret masked."""
    data = settings.model_dump(mode="json")
    data["database"]["url"] = settings.database.shown_url()
    return data
