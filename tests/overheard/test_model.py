import contextlib
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overheard.errors import MalformedMessage, UnsupportedSchemaVersion
from overheard.model import Issue, Platform, Post
from tests.factories import post


def test_post_round_trips_through_bytes() -> None:
    original = post("Light Street Water Main Break - the morning after")
    assert Post.from_bytes(original.to_bytes()) == original


def test_issue_id_is_uuid5_of_city_and_post_id() -> None:
    first = Issue.id_for("baltimore", "reddit:t3_wp55z")
    assert first == Issue.id_for("baltimore", "reddit:t3_wp55z")
    assert first.version == 5
    assert first != Issue.id_for("nyc", "reddit:t3_wp55z")
    assert first != Issue.id_for("baltimore", "reddit:t3_wp55y")


def test_created_at_is_normalised_to_utc() -> None:
    data = json.loads(post("pothole").to_bytes())
    data["created_at"] = "2012-07-19T09:05:00-04:00"
    assert Post.from_bytes(json.dumps(data).encode()).created_at.isoformat() == (
        "2012-07-19T13:05:00+00:00"
    )


@pytest.mark.parametrize(
    ("mutate", "error", "says"),
    [
        (lambda d: d.update(schema_version=99), UnsupportedSchemaVersion, "schema_version 99"),
        (lambda d: d.pop("schema_version"), UnsupportedSchemaVersion, "schema_version None"),
        (lambda d: d.update(text="   "), MalformedMessage, "post has no text"),
        (lambda d: d.pop("text"), MalformedMessage, "text: Field required"),
        (lambda d: d.update(platform="myspace"), MalformedMessage, "platform"),
        (lambda d: d.update(id="reddit-t3_x"), MalformedMessage, "<platform>:<native id>"),
        (lambda d: d.update(id="x:123"), MalformedMessage, "does not match platform"),
        (lambda d: d.update(created_at="2012-07-19T13:05:00"), MalformedMessage, "created_at"),
    ],
)
def test_unreadable_posts_raise_typed_errors(mutate, error, says) -> None:
    data = json.loads(post("pothole on Eastern Ave").to_bytes())
    mutate(data)
    with pytest.raises(error, match=says):
        Post.from_bytes(json.dumps(data).encode())


@pytest.mark.parametrize("raw", [b"", b"{not json", b"\xff\xfe", b"[1, 2]", b"null", b'"x"'])
def test_malformed_bytes_raise_malformed_message(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        Post.from_bytes(raw)


@given(st.binary(max_size=200))
def test_no_bytes_crash_the_reader(raw: bytes) -> None:
    with contextlib.suppress(MalformedMessage, UnsupportedSchemaVersion):
        Post.from_bytes(raw)


def test_platform_prefixes_ids() -> None:
    assert Post.make_id(Platform.X, "1849") == "x:1849"
    assert isinstance(Issue.id_for("baltimore", "x:1849"), uuid.UUID)


def test_nul_characters_are_dropped_from_text() -> None:
    assert post("pothole\x00 on Fleet St").text == "pothole on Fleet St"
    with pytest.raises(ValueError, match="post has no text"):
        post("\x00 \x00")
