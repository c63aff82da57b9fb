"""The data model every stage shares: `Post` in, `Issue` out.

Both travel between stages as JSON bytes with a `schema_version`. A reader
that meets bytes it cannot understand raises a `MessageError` subclass, which
the runtime turns into a dead letter; it never crashes the stage.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from overheard.errors import MalformedMessage, UnsupportedSchemaVersion

#: Namespace of issue ids: uuid5(ISSUE_NAMESPACE, "<city>:<post id>").
ISSUE_NAMESPACE = uuid.UUID("5b0f3c52-2a4e-4c0e-9a55-0b6f7e3e9d11")


class Platform(StrEnum):
    X = "x"
    REDDIT = "reddit"


class Precision(StrEnum):
    """How exactly a location pins the problem, from best to worst."""

    ADDRESS = "address"
    INTERSECTION = "intersection"
    STREET = "street"
    PLACE = "place"
    NEIGHBOURHOOD = "neighbourhood"
    PLATFORM_GEOTAG = "platform_geotag"
    CITY = "city"


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Author(_Part):
    id: str | None = None
    handle: str | None = None
    #: The free-text location on the author's profile, where the platform gives one.
    profile_location: str | None = None
    #: The author's pseudonym: hex HMAC-SHA256 of `id` (`overheard.privacy`). Sinks get
    #: this instead of `id`, `handle` and `profile_location`. Left out of the JSON when
    #: unset, so posts on the bus keep the shape readers before it know.
    key: str | None = Field(default=None, exclude_if=lambda value: value is None)
    #: Which key made `key` (`[privacy] key_id`), so that keys can be rotated.
    key_id: str | None = Field(default=None, exclude_if=lambda value: value is None)


class GeoPoint(_Part):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class PlatformPlace(_Part):
    """A named place the platform attached to the post (e.g. an X place)."""

    id: str | None = None
    name: str | None = None
    full_name: str | None = None
    country_code: str | None = None
    #: [west, south, east, north]
    bbox: tuple[float, float, float, float] | None = None


class PlatformGeo(_Part):
    point: GeoPoint | None = None
    place: PlatformPlace | None = None


class Thread(_Part):
    """Where the post sits in a conversation."""

    subreddit: str | None = None
    #: Id (in `Post.id` form) of the post or comment this one answers.
    reply_to: str | None = None
    #: The handle of the account this post answers, when the platform says (X does).
    reply_to_author: str | None = None
    #: The handle of the author of the post this one quotes (X quote posts).
    quoted_author: str | None = None
    #: The conversation (X) or submission (Reddit) the post belongs to, in `Post.id` form.
    conversation: str | None = None
    #: The title of the submission, for Reddit comments and submissions.
    title: str | None = None


class Provenance(_Part):
    connector: str
    connector_version: str
    collected_at: AwareDatetime
    #: Where the post came from: an API endpoint, or `file:line` of an archive.
    source: str | None = None


class Message(BaseModel):
    """A versioned message on the bus."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The schema versions this code reads; anything else is dead-lettered.
    SUPPORTED_VERSIONS: ClassVar[frozenset[int]] = frozenset({1})
    CURRENT_VERSION: ClassVar[int] = 1

    schema_version: int = 1

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        """Decode a message, raising a `MessageError` subclass on anything unreadable."""
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedMessage(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise MalformedMessage(f"expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version not in cls.SUPPORTED_VERSIONS:
            raise UnsupportedSchemaVersion(
                f"{cls.__name__} schema_version {version!r} is not one this reader knows "
                f"({sorted(cls.SUPPORTED_VERSIONS)})"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise MalformedMessage(_describe(cls.__name__, exc)) from exc


def _describe(kind: str, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
    )
    return f"invalid {kind}: {problems}"


class Post(Message):
    """One public post from any platform, normalised."""

    #: `<platform>:<native id>`, e.g. `x:1849…` or `reddit:t3_wp55z`; the Kafka key.
    id: str
    platform: Platform
    url: str | None = None
    created_at: AwareDatetime
    author: Author = Author()
    text: Annotated[str, Field(min_length=1)]
    language: str | None = None
    mentions: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    geo: PlatformGeo | None = None
    thread: Thread = Thread()
    provenance: Provenance

    @field_validator("text")
    @classmethod
    def _has_words(cls, text: str) -> str:
        # NUL never carries meaning in a post, and PostgreSQL cannot store it.
        text = text.replace("\x00", "")
        if not text.strip():
            raise ValueError("post has no text")
        return text

    @field_validator("created_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _id_names_platform(self) -> Self:
        prefix, sep, native = self.id.partition(":")
        if not sep or not native:
            raise ValueError(f"post id {self.id!r} must be '<platform>:<native id>'")
        if prefix != self.platform.value:
            raise ValueError(f"post id prefix {prefix!r} does not match platform {self.platform}")
        return self

    @classmethod
    def make_id(cls, platform: Platform, native_id: str) -> str:
        return f"{platform.value}:{native_id}"


class Span(_Part):
    """Characters [start, end) of the post text."""

    text: str
    start: int
    end: int


class Location(_Part):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    precision: Precision
    span: Span | None = None
    #: What resolved it: "gazetteer", "geocoder:nominatim", "platform", …
    source: str
    confidence: Annotated[float, Field(ge=0, le=1)]


class Category(_Part):
    name: str
    #: The city's 311 service code for this category, when the profile maps one.
    service_code: str | None = None


class Scores(_Part):
    complaint: Annotated[float, Field(ge=0, le=1)]
    category: Annotated[float, Field(ge=0, le=1)]
    locality: Annotated[float, Field(ge=0, le=1)]
    #: The civic model's probability; None when the vocabulary decided alone.
    civic: Annotated[float, Field(ge=0, le=1)] | None = None


class Versions(_Part):
    classifier: str
    profile: str


class Issue(Message):
    """A post the classifier judged to be a local complaint."""

    #: uuid5 of city and post id: the same post always yields the same issue.
    id: uuid.UUID
    city: str
    post: Post
    category: Category
    scores: Scores
    location: Location | None = None
    #: The post mentions or answers one of the city's official accounts.
    addresses_city: bool
    #: The post names the city.
    names_city: bool
    #: Belongs to emergency services rather than 311.
    urgent: bool = False
    #: Whether the profile routes it to the city's 311 (urgent reports, by default, not).
    to_311: bool = True
    #: What said it is a complaint: "models" or "vocabulary".
    decided_by: str
    #: Reasons a person can read, in the order they were weighed.
    explanation: tuple[str, ...] = ()
    versions: Versions

    @classmethod
    def id_for(cls, city: str, post_id: str) -> uuid.UUID:
        return uuid.uuid5(ISSUE_NAMESPACE, f"{city}:{post_id}")
