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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
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
    #: `min.insync.replicas` of the topics overheard creates: how many replicas must have
    #: a message before an acks=all send is acknowledged. Unset: the broker's default.
    min_insync_replicas: Annotated[int, Field(ge=1)] | None = None
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

    @field_validator("min_insync_replicas")
    @classmethod
    def _within_replication(cls, value: int | None, info: ValidationInfo) -> int | None:
        replicas = info.data.get("replication_factor")
        if value is not None and replicas is not None and value > replicas:
            raise ValueError(
                f"must be at most bus.replication_factor ({replicas}): a topic with {replicas} "
                f"replica(s) can never have {value} in sync, so every send would be refused"
            )
        return value


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
    #: Ask a geocoder about addresses and crossings the gazetteer cannot place:
    #: "none" (offline, the default) or "nominatim" (`overheard.geo.geocoder`).
    geocoder: Literal["none", "nominatim"] = "none"
    #: Nominatim's usage policy asks for a user agent that identifies the application.
    #: Set it to name your deployment and a contact before turning the geocoder on.
    geocoder_user_agent: str = "overheard-geocoder-fallback"
    geocoder_domain: str = "nominatim.openstreetmap.org"
    #: ISO 3166-1 alpha-2 codes results must lie in.
    geocoder_countrycodes: list[str] = ["us"]
    #: Seconds between requests (the public service allows one a second).
    geocoder_min_delay_s: Annotated[float, Field(ge=1.0)] = 1.0
    geocoder_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    geocoder_retries: Annotated[int, Field(ge=0)] = 3
    #: Seconds one post may spend on the geocoder, waits included.
    geocoder_budget_s: Annotated[float, Field(gt=0)] = 10.0
    #: Answers kept across restarts, so each query is asked once.
    geocoder_cache: Path = Path("var/geocoder-cache.sqlite")


class ModelsSettings(_Section):
    #: Score the survivors of the scan with the trained models; off, the vocabulary
    #: of the city profile decides alone.
    enabled: bool = True
    #: Where the trained models are kept (`overheard train` writes them here).
    directory: Path = Path("var/models")
    #: Train them on first use when the folder is empty and the labelled data is at hand.
    train_if_missing: bool = True
    #: The labelled data they are trained on (see shared/data/README.md).
    data_dir: Path = Path("../shared/data")
    #: Refuse to start without the trained linear models, instead of falling back to the
    #: shipped encoder alone (or, with `encoder` off, the vocabulary alone).
    required: bool = False
    #: Re-score complaint and civic with the fine-tuned MiniLM encoder (shipped with
    #: overheard) where the linear civic head does not rule a post out; off, the linear
    #: heads decide alone (cheaper, less accurate: see classify/trained/encoder/metrics.json).
    encoder: bool = True


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
    #: What `overheard run --stage ingest` reads: archive files, or live X or Reddit.
    connector: Literal["archive", "x", "reddit"] = "archive"


class XSettings(_Section):
    """The X connector: API v2 recent search (tweepy), with an app's bearer token."""

    #: From the environment (OVERHEARD_X__BEARER_TOKEN), never a file.
    bearer_token: SecretStr | None = None
    #: Longest query the account's access level accepts (X: 512 on Basic, 4096 on Pro);
    #: the profile's problem phrases are split over as many queries as it takes.
    max_query_length: Annotated[int, Field(ge=64)] = 1024
    #: Add `bounding_box:` to the place terms; only some access levels allow geo operators.
    geo_operators: bool = False
    #: [west, south, east, north] for `bounding_box:` (each side at most 25 miles).
    bounding_box: tuple[float, float, float, float] | None = None
    #: `lang:` of the query; empty for every language.
    language: str = "en"
    #: Leave out posts from and to the profile's official accounts (the city already knows).
    exclude_official_accounts: bool = True
    #: Results a page (10-100).
    max_results: Annotated[int, Field(ge=10, le=100)] = 100
    poll_interval_s: Positive = 60.0
    #: How long to wait on a 429 that names no reset time: X's rate-limit window.
    rate_limit_wait_s: Positive = 900.0
    #: Every this many hours, ask X's batch compliance which posts sent were deleted since
    #: (X's developer terms require honouring it); 0 turns the check off.
    compliance_every_h: Annotated[float, Field(ge=0)] = 24.0
    #: How often to ask whether a compliance job is done, and how long to wait for it.
    compliance_poll_s: Positive = 30.0
    compliance_wait_max_s: Positive = 3600.0
    #: Read the filtered stream (rules from the profile) instead of polling recent search;
    #: needs an access level that includes it. Recent search still backfills each restart.
    filtered_stream: bool = False


class RedditSettings(_Section):
    """The Reddit connector (praw, application-only OAuth): the profile's subreddits."""

    #: From the environment (OVERHEARD_REDDIT__CLIENT_ID / __CLIENT_SECRET), never a file.
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    #: Reddit asks for a descriptive user agent naming the app and its operator.
    user_agent: str = "overheard/0.1 (civic complaints to 311)"
    #: What to read of each subreddit: new submissions, new comments, or both.
    streams: list[Literal["submissions", "comments"]] = ["submissions", "comments"]
    poll_interval_s: Positive = 30.0
    #: Every this many hours, ask Reddit (`/api/info`) which posts sent were deleted or
    #: removed since; 0 turns the check off.
    recheck_every_h: Annotated[float, Field(ge=0)] = 24.0


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
    #: One request per cluster of reports (the profile's [clusters]); later reports are
    #: attached to it. Off: every issue is a request of its own.
    cluster: bool = True
    #: Post later reports of a cluster as notes on its request, through mySociety's
    #: service request updates extension (POST servicerequestupdates), which the server
    #: must offer; off, they are recorded in the ledger only.
    updates: bool = False


class HealthSettings(_Section):
    """The HTTP endpoint of `overheard run`: /healthz, /readyz, /metrics."""

    enabled: bool = False
    host: str = "127.0.0.1"
    #: 0 takes any free port (the log says which).
    port: Annotated[int, Field(ge=0, le=65535)] = 9464
    #: /readyz asks the broker at most this often.
    probe_every_s: Positive = 5.0


class LogSettings(_Section):
    #: "auto": readable text when stderr is a terminal, JSON lines otherwise.
    format: Literal["auto", "json", "text"] = "auto"


class DaemonSettings(_Section):
    #: After SIGTERM/SIGINT, how long the stages may take to finish the batch in hand
    #: and commit; past it the process exits non-zero and the batch is redelivered.
    shutdown_grace_s: Positive = 30.0


class ReplaySettings(_Section):
    """`overheard replay` on the in-process bus (`overheard.replay_workers`)."""

    #: Processes that read and classify shares of the archives; 0: one per usable core.
    #: 1 (or --speed, --bus kafka) replays in one process.
    workers: Annotated[int, Field(ge=0)] = 0


class PrivacySettings(_Section):
    """How authors are pseudonymised before any sink sees them (`overheard.privacy`)."""

    #: The HMAC-SHA256 key of author pseudonyms; from the environment
    #: (OVERHEARD_PRIVACY__AUTHOR_KEY), never a file. Unset: sinks get no author at all.
    author_key: SecretStr | None = None
    #: Names the key, stored beside every pseudonym, so that a new key can replace it.
    key_id: Annotated[str, Field(min_length=1, max_length=32)] = "k1"


class RetentionSettings(_Section):
    """How long sinks keep post text (`overheard retention apply`, and the daemon daily)."""

    #: Days a sink keeps a post's text, by sink name (e.g. {sql = 90, jsonl = 30});
    #: a sink not named keeps it until it is forgotten.
    text_days: dict[str, Annotated[int, Field(ge=0)]] = {}
    #: How often the daemon applies it.
    every_h: Positive = 24.0


class RepliesSettings(_Section):
    """The city's own accounts that post approved replies (`overheard.reply_platforms`)."""

    #: An OAuth 2.0 user access token with tweet.write, from the environment
    #: (OVERHEARD_REPLIES__X_USER_TOKEN), never a file; and that account's user id.
    x_user_token: SecretStr | None = None
    x_user_id: str | None = None
    #: The Reddit account (a script app: [reddit] client_id and client_secret); the
    #: password from the environment (OVERHEARD_REPLIES__REDDIT_PASSWORD).
    reddit_username: str | None = None
    reddit_password: SecretStr | None = None


class AuditSettings(_Section):
    """The append-only audit log (`overheard.audit`)."""

    #: A SQLAlchemy URL; unset, the SQL sink's database when `sql` is a sink, else
    #: sqlite:///var/audit.db.
    url: str | None = None


class Fields(BaseModel):
    """The settings' shape, shared by the file check and the full load."""

    model_config = ConfigDict(extra="forbid")

    #: The city profile: a name in config/cities/ or the path of a TOML file.
    city: str = "baltimore"
    bus: BusSettings = BusSettings()
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    geo: GeoSettings = GeoSettings()
    models: ModelsSettings = ModelsSettings()
    retry: RetrySettings = RetrySettings()
    jsonl: JsonlSettings = JsonlSettings()
    webhook: WebhookSettings = WebhookSettings()
    open311: Open311Settings = Open311Settings()
    x: XSettings = XSettings()
    reddit: RedditSettings = RedditSettings()
    health: HealthSettings = HealthSettings()
    log: LogSettings = LogSettings()
    daemon: DaemonSettings = DaemonSettings()
    replay: ReplaySettings = ReplaySettings()
    privacy: PrivacySettings = PrivacySettings()
    retention: RetentionSettings = RetentionSettings()
    audit: AuditSettings = AuditSettings()
    replies: RepliesSettings = RepliesSettings()
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
