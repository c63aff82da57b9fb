"""The live X connector on recorded recent-search traffic and on answers written from X's docs."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from overheard import metrics
from overheard.errors import ConfigError, TransientError
from overheard.ingest.live import CredentialsRejected
from overheard.ingest.x_search import EXPANSIONS, TWEET_FIELDS, XSearch, build_queries, stream_name
from overheard.model import Post
from overheard.profile import load_profile
from overheard.settings import XSettings
from tests.ingest.replay import Feed, cassette

#: The recorded page (tweepy's own recording, query "Tweepy").
RECORDED_IDS = [
    "1578516068309794817",
    "1578515564971970560",
    "1578515061600964608",
    "1578514558372618243",
    "1578514055010324480",
    "1578513551664173057",
    "1578513048372797440",
    "1578512545039585281",
    "1578512041748627456",
    "1578511538419212288",
]
NEXT_TOKEN = "b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul"
RESET = 1665183229  # x-rate-limit-reset in the 429 cassette


def settings(**changes: object) -> XSettings:
    base = XSettings(
        bearer_token=SecretStr("x-test-bearer-token"), rate_limit_wait_s=0.01, compliance_every_h=0
    )
    return base.model_copy(update=changes)


def waited() -> tuple[float, float]:
    """The X connector's rate-limit waits so far as /metrics shows them: how many, how long."""
    sample = metrics.registry.get_sample_value
    return (
        sample("overheard_rate_limit_waits_total", {"connector": "x"}) or 0.0,
        sample("overheard_rate_limit_wait_seconds_total", {"connector": "x"}) or 0.0,
    )


def connector(*, clock: float = RESET, **changes: object) -> XSearch:
    """An XSearch with one query; `clock` is the time it believes it is."""
    made = XSearch.from_settings(settings(**changes), load_profile("baltimore"), threading.Event())
    made.queries = made.queries[:1]
    made._clock = lambda: clock
    return made


# --- queries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "exclude", "most"), [(512, False, 8), (1024, True, 6), (4096, True, 1)]
)
def test_queries_cover_every_problem_phrase_within_the_limit(
    limit: int, exclude: bool, most: int
) -> None:
    profile = load_profile("baltimore")
    queries = build_queries(
        profile, settings(max_query_length=limit, exclude_official_accounts=exclude)
    )
    assert all(len(q) <= limit for q in queries)
    joined = " ".join(queries)
    for category in profile.categories.values():
        for term in category.problems:
            assert term.replace('"', "") in joined, term
    for name in profile.city.names:
        assert name in joined, name
    # One request per query and poll: few enough for X's rate limits.
    assert len(queries) <= most


def test_queries_exclude_the_city_accounts_retweets_and_other_languages() -> None:
    profile = load_profile("baltimore")
    for query in build_queries(profile, settings()):
        assert query.endswith(" ".join(f"-from:{a} -to:{a}" for a in profile.accounts.x))
        assert "-is:retweet lang:en" in query
        assert query.startswith('(baltimore OR bmore OR "b\'more" OR "charm city" OR ')


def test_geo_operators_join_the_places_only_when_allowed() -> None:
    profile = load_profile("baltimore")
    box = (-76.71, 39.2, -76.53, 39.37)
    assert "bounding_box" not in " ".join(build_queries(profile, settings(bounding_box=box)))
    with_geo = build_queries(profile, settings(geo_operators=True, bounding_box=box))
    assert all("OR bounding_box:[-76.71 39.2 -76.53 39.37])" in q for q in with_geo)
    with pytest.raises(ConfigError, match="bounding_box"):
        build_queries(profile, settings(geo_operators=True))


def test_a_limit_the_exclusions_fill_is_refused_with_the_way_out() -> None:
    with pytest.raises(ConfigError, match="exclude_official_accounts"):
        build_queries(load_profile("baltimore"), settings(max_query_length=256))
    assert build_queries(
        load_profile("baltimore"), settings(max_query_length=256, exclude_official_accounts=False)
    )


# --- recorded traffic -------------------------------------------------------------------


def test_a_recorded_page_becomes_posts_and_a_cursor_that_resumes_the_poll(
    tmp_path: Path,
) -> None:
    x = connector()
    feed = Feed(x, tmp_path)
    sent: list[str] = []
    x._client.session.hooks["response"].append(lambda r, **_: sent.append(r.request.url))
    with cassette("x/search_recent.yaml"):
        batch = next(x.poll(feed.cursors))
    assert [p.id for p in batch.items if isinstance(p, Post)] == [f"x:{i}" for i in RECORDED_IDS]
    first = batch.items[0]
    assert isinstance(first, Post)
    # No created_at in the recording (default fields): the Snowflake id holds the time.
    assert first.created_at.isoformat() == "2022-10-07T22:42:12.752000+00:00"
    assert first.provenance.connector == "x" and first.url.endswith(RECORDED_IDS[0])
    # Mid-poll: the old since_id stays, with the token to go on and the newest id seen.
    assert batch.cursor == {
        "since_id": None,
        "next_token": NEXT_TOKEN,
        "newest_id": RECORDED_IDS[0],
    }
    (url,) = sent
    for name in ("tweet.fields", "expansions", "user.fields", "place.fields"):
        assert name in url
    assert all(f in url for f in TWEET_FIELDS) and all(e in url for e in EXPANSIONS)


def test_pages_follow_next_token_and_since_id_moves_only_after_the_last(tmp_path: Path) -> None:
    x = connector()
    feed = Feed(x, tmp_path)
    stream = stream_name(x.queries[0])
    with cassette("x/search_recent_paged_from_docs.yaml"):
        feed.poll()
    assert feed.cursors.load(stream) == {"since_id": RECORDED_IDS[0]}
    assert feed.post_ids()[:10] == [f"x:{i}" for i in RECORDED_IDS]
    full, bare = feed.posts()[10:]
    assert full["author"] == {
        "id": "2244994945",
        "handle": "canton_neighbor",
        "profile_location": "Baltimore, MD",
    }
    assert full["geo"]["point"] == {"lat": 39.2851, "lon": -76.5786}
    assert full["geo"]["place"]["full_name"] == "Baltimore, MD"
    assert full["thread"]["reply_to"] == full["thread"]["conversation"] == "x:1578509000000000000"
    assert full["mentions"] == ["Baltimore311"] and full["links"] == ["https://example.org/photo"]
    assert full["language"] == "en" and full["created_at"] == "2022-10-07T22:20:00Z"
    # Every optional field missing: still a post, with what X always sends.
    assert bare["text"] == "streetlight out on Fleet St in Fells Point for a week"
    assert bare["author"] == {"id": None, "handle": None, "profile_location": None}
    assert bare["geo"] is None and bare["language"] is None
    # The referenced tweet X reports not found is recorded for `overheard forget`.
    (deleted,) = feed.cursors.deletions()
    assert deleted.post_id == "x:1578509000000000000"


def test_a_restart_mid_poll_resumes_with_the_stored_next_token(tmp_path: Path) -> None:
    x = connector()
    feed = Feed(x, tmp_path)
    stream = stream_name(x.queries[0])
    feed.cursors.commit(
        stream, {"since_id": None, "next_token": NEXT_TOKEN, "newest_id": RECORDED_IDS[0]}
    )
    with cassette("x/search_recent_paged_from_docs.yaml", every_answer=False) as played:
        feed.poll()
    # Only the last page was asked for (the paging matcher wants the recorded next_token).
    assert played.play_count == 1
    assert feed.cursors.load(stream) == {"since_id": RECORDED_IDS[0]}
    assert feed.post_ids() == ["x:1578510000000000001", "x:1578509500000000002"]


def test_a_stored_next_token_x_refuses_restarts_the_poll_without_a_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x = connector()
    feed = Feed(x, tmp_path)
    stream = stream_name(x.queries[0])
    feed.cursors.commit(
        stream, {"since_id": None, "next_token": NEXT_TOKEN, "newest_id": RECORDED_IDS[0]}
    )
    with (
        caplog.at_level(logging.WARNING),
        cassette("x/search_recent_400_next_token_from_docs.yaml"),
    ):
        feed.poll()
    assert "refused the stored next_token" in caplog.text
    assert len(feed.post_ids()) == 12
    assert feed.cursors.load(stream) == {"since_id": RECORDED_IDS[0]}


# --- answers written from X's documentation ---------------------------------------------


def test_401_stops_with_a_clear_message_after_one_request(tmp_path: Path) -> None:
    x = connector()
    feed = Feed(x, tmp_path)
    rejected = pytest.raises(CredentialsRejected, match="OVERHEARD_X__BEARER_TOKEN")
    with cassette("x/search_recent_401_from_docs.yaml") as played, rejected:
        feed.poll()
    assert played.play_count == 1
    assert feed.post_ids() == [] and feed.cursors.load(stream_name(x.queries[0])) == {}


def test_403_stops_with_a_clear_message_after_one_request(tmp_path: Path) -> None:
    x = connector()
    feed = Feed(x, tmp_path)
    rejected = pytest.raises(CredentialsRejected, match="access level")
    with cassette("x/search_recent_403_from_docs.yaml") as played, rejected:
        feed.poll()
    assert played.play_count == 1
    assert feed.post_ids() == []


def test_429_waits_until_the_reset_time_it_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed = Feed(connector(clock=RESET - 2), tmp_path)
    count, seconds = waited()
    with caplog.at_level(logging.WARNING), cassette("x/search_recent_429_from_docs.yaml"):
        feed.poll()
    assert waited() == (count + 1, seconds + 3)
    assert "X rate limit reached: waiting 3 s, until 2022-10-07T22:53:49+00:00" in caplog.text
    assert len(feed.post_ids()) == 12


def test_429_without_a_reset_time_waits_the_configured_window(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed = Feed(connector(), tmp_path)
    count, seconds = waited()
    with caplog.at_level(logging.WARNING), cassette("x/search_recent_429_no_reset_from_docs.yaml"):
        feed.poll()
    after_count, after_seconds = waited()
    assert after_count == count + 1 and after_seconds == pytest.approx(seconds + 0.01)
    assert "no reset time" in caplog.text
    assert len(feed.post_ids()) == 12


@pytest.mark.parametrize(
    "name", ["x/search_recent_503_from_docs.yaml", "x/search_recent_truncated_from_docs.yaml"]
)
def test_5xx_and_a_torn_body_are_transient_and_the_retry_delivers(
    name: str, tmp_path: Path
) -> None:
    x = connector()
    feed = Feed(x, tmp_path)
    with cassette(name):
        with pytest.raises(TransientError):
            feed.poll()
        assert feed.post_ids() == []
        feed.poll()
    assert len(feed.post_ids()) == 12


def test_no_bearer_token_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="OVERHEARD_X__BEARER_TOKEN"):
        XSearch.from_settings(XSettings(), load_profile("baltimore"), threading.Event())
