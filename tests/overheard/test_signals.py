"""`overheard run` as a real process against the test broker: signals, health, metrics, logs.

SIGTERM and SIGINT stop fetching, finish the batch in hand, commit and exit 0;
a restart carries on where the commits say, so every issue is written once.
SIGHUP reloads the city profile without a restart (issues record its version).
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import sqlalchemy
from kafka import KafkaAdminClient

from overheard.bus.base import Topics
from overheard.bus.kafka import KafkaBus
from overheard.classify.decide import Classifier
from overheard.daemon import ShutdownTimedOut, wait_for_stages
from overheard.deadletters import read_kafka
from overheard.ingest import iter_archive
from overheard.model import Issue, Post
from overheard.paths import CONFIG_DIR
from overheard.profile import load_profile
from overheard.settings import BusSettings
from tests.factories import post
from tests.support.overheard_daemon import (
    Daemon,
    base_environment,
    committed,
    free_port,
    get,
    metric,
    wait_for,
)

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"
SECRETS = {"OVERHEARD_WEBHOOK__SECRET": "Hmac-Key-77", "OVERHEARD_OPEN311__API_KEY": "Api-Key-88"}


def environment(bootstrap: str, prefix: str, tmp_path: Path) -> dict[str, str]:
    return {
        **base_environment(bootstrap, prefix, tmp_path),
        **SECRETS,
        "OVERHEARD_DATABASE__URL": f"sqlite:///{tmp_path}/overheard.db",
    }


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def sql_ids(tmp_path: Path) -> list[uuid.UUID]:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/overheard.db")
    try:
        with engine.connect() as connection:
            ids = connection.scalars(sqlalchemy.text("SELECT id FROM issues")).all()
    except sqlalchemy.exc.OperationalError:  # the sink has not created the table yet
        return []
    finally:
        engine.dispose()
    return [uuid.UUID(str(i)) for i in ids]


@pytest.mark.durable_broker
def test_sigterm_and_sigint_finish_the_batch_commit_and_exit_zero(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path, daemons: list[Daemon]
) -> None:
    prefix = kafka_topic_prefix.rstrip(".")
    env = environment(kafka_bootstrap, prefix, tmp_path)
    bus_settings = BusSettings(
        kind="kafka", bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=2
    )
    topics = Topics.for_city(prefix, "baltimore")
    bus = KafkaBus(bus_settings, topics)
    bus.ensure_topics()
    posts = [item for item, _ in iter_archive(SAMPLE) if isinstance(item, Post)]
    producer = bus.producer()
    for each in posts:
        producer.send(topics.posts, each.to_bytes(), key=each.id.encode())
    producer.flush()
    producer.close()
    decisions = Classifier(load_profile("baltimore")).classify(posts)
    expected = {d.issue.id for d in decisions if d.issue is not None}
    classify_group = f"{prefix}.baltimore.classify"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    port = free_port()
    health = f"http://127.0.0.1:{port}"

    try:
        first = Daemon(["--sink", "sql", "--health-port", str(port)], env, tmp_path / "1.log")
        daemons.append(first)

        def ready() -> bool:
            answer = get(f"{health}/readyz")
            return answer is not None and answer.status_code == 200

        wait_for(ready, "/readyz to say ready", first)
        checks = {c["name"]: c["ok"] for c in httpx.get(f"{health}/readyz").json()["checks"]}
        assert checks == {"bus": True, "classifier": True, "daemon": True, "sink:sql": True}
        wait_for(lambda: committed(admin, classify_group) > 0, "a first commit", first)
        assert first.stop(signal.SIGTERM) == 0, first.log.read_text()[-4000:]
        assert first.logged("received SIGTERM: stopping after the batch in hand")
        at_stop = committed(admin, classify_group)

        second = Daemon(["--sink", "sql", "--health-port", str(port)], env, tmp_path / "2.log")
        daemons.append(second)
        wait_for(
            lambda: (
                committed(admin, classify_group) == len(posts)
                and len(sql_ids(tmp_path)) >= len(expected)
            ),
            "every post classified and every issue written",
            second,
        )
        wait_for(ready, "/readyz on the restarted daemon", second)
        exported = httpx.get(f"{health}/metrics").text
        assert second.stop(signal.SIGINT) == 0, second.log.read_text()[-4000:]
    finally:
        admin.close()

    stored = sql_ids(tmp_path)
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected
    # The second process consumed what the first had not committed, and no more.
    assert metric(exported, 'overheard_posts_in_total{connector="archive"}') == (
        len(posts) - at_stop
    )
    assert metric(exported, 'overheard_stage_messages_total{stage="classify"}') == (
        len(posts) - at_stop
    )
    assert "overheard_issues_out_total{" in exported
    assert 'overheard_consumer_lag{partition="0",stage="classify"' in exported
    for daemon in (first, second):
        text = daemon.log.read_text()
        assert all(secret not in text for secret in SECRETS.values())
    issue_events = [e for e in second.events() if "issue_id" in e and "post_id" in e]
    assert issue_events, "no decision was logged with its post and issue ids"


def test_sighup_reloads_the_city_profile_without_a_restart(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path, daemons: list[Daemon]
) -> None:
    prefix = kafka_topic_prefix.rstrip(".")
    profile = tmp_path / "baltimore.toml"
    original = (CONFIG_DIR / "cities" / "baltimore.toml").read_text()
    profile.write_text(original)
    old_version = load_profile(str(profile)).city.version
    env = environment(kafka_bootstrap, prefix, tmp_path)
    bus_settings = BusSettings(
        kind="kafka", bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=2
    )
    topics = Topics.for_city(prefix, "baltimore")
    bus = KafkaBus(bus_settings, topics)
    bus.ensure_topics()
    producer = bus.producer()

    def send(text: str, native_id: str) -> uuid.UUID:
        the_post = post(text, native_id)
        producer.send(topics.posts, the_post.to_bytes(), key=the_post.id.encode())
        producer.flush()
        return Issue.id_for("baltimore", the_post.id)

    def profile_version_of(issue_id: uuid.UUID) -> str | None:
        for record in read_kafka(bus_settings, topics.issues):
            issue = Issue.from_bytes(record.value)
            if issue.id == issue_id:
                return issue.versions.profile
        return None

    daemon = Daemon(["--stage", "classify", "--city", str(profile)], env, tmp_path / "d.log")
    daemons.append(daemon)
    try:
        before = send("Huge pothole on Eastern Ave again", "t3_hup1")
        wait_for(lambda: profile_version_of(before) is not None, "the first issue", daemon)
        assert profile_version_of(before) == old_version

        profile.write_text(original.replace(f'version = "{old_version}"', 'version = "2099.1.0"'))
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.logged("reloaded the city profile"), "the reload", daemon)
        after = send("Another huge pothole on Eastern Ave", "t3_hup2")
        wait_for(lambda: profile_version_of(after) is not None, "the second issue", daemon)
        assert profile_version_of(after) == "2099.1.0"

        profile.write_text("[city]\nname = ")  # broken: the profile in use stays
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.logged("kept the city profile in use"), "the refusal", daemon)
        kept = send("Yet another huge pothole on Eastern Ave", "t3_hup3")
        wait_for(lambda: profile_version_of(kept) is not None, "the third issue", daemon)
        assert profile_version_of(kept) == "2099.1.0"
        assert daemon.process.poll() is None
    finally:
        producer.close()
    assert daemon.stop(signal.SIGTERM) == 0, daemon.log.read_text()[-4000:]


def test_stages_that_outlive_the_grace_period_are_given_up() -> None:
    """Past the grace after a stop, the daemon stops waiting (its batch is redelivered later)."""
    stop = threading.Event()
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, name="sink:sql", daemon=True)
    stuck.start()
    pipeline = SimpleNamespace(
        stop=stop, settings=SimpleNamespace(daemon=SimpleNamespace(shutdown_grace_s=0.5))
    )
    stop.set()
    try:
        with pytest.raises(ShutdownTimedOut, match="sink:sql still busy"):
            wait_for_stages([stuck], pipeline, None, threading.Event())  # type: ignore[arg-type]
    finally:
        release.set()
