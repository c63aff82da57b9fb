"""Issue 7's proofs under faults, on the real broker and real PostgreSQL (marker `faults`).

Each runs `overheard run` as a real process and injects one fault:
- ingest, classify and sink killed -9 at random points of a 3000-post stream and
  restarted, six times: every issue in PostgreSQL once, one 311 request per issue;
- malformed messages in every topic a stage consumes: dead-lettered with their
  reason and original bytes, while the stage keeps going;
- PostgreSQL unreachable mid-stream, then back: retried, never skipped nor
  dead-lettered, every issue written once, and /readyz not ready meanwhile;
- the broker stopped for 20 seconds mid-stream: nothing lost or doubled, and
  /readyz not ready during the outage;
- the 311 server answering 503 and 429, then down for a while: retried, each
  issue filed once, one ledger entry each, nothing dead-lettered;
- two classify processes in one group: one partition each, and when one is
  killed (-9) the other takes both over; every issue written once;
- one broker of three (replication factor 3, min.insync.replicas 2) killed -9
  mid-stream: the pipeline carries on, nothing lost or doubled.
"""

from __future__ import annotations

import csv
import random
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from sqlalchemy.engine import make_url

from overheard.bus.base import Topics
from overheard.bus.kafka import KafkaBus, KafkaBusProducer
from overheard.classify.decide import Classifier
from overheard.deadletters import parse, read_kafka
from overheard.geo.city import locator_for
from overheard.ingest import iter_archive
from overheard.model import Issue, Post
from overheard.paths import CONFIG_DIR
from overheard.profile import load_profile
from overheard.settings import BusSettings
from overheard.sinks.open311_ledger import DONE, Ledger
from overheard.testing.open311_process import Open311Server
from tests.factories import make_issue
from tests.support.kafka_broker import KafkaCluster
from tests.support.overheard_daemon import (
    Daemon,
    TcpProxy,
    base_environment,
    committed,
    end_offset,
    free_port,
    get,
    metric,
    wait_for,
)

pytestmark = [pytest.mark.faults, pytest.mark.durable_broker]

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def sample_posts(count: int) -> tuple[list[Post], set[uuid.UUID]]:
    """The first `count` posts of the sample archive, and the issue ids they must yield."""
    posts = [item for item, _ in iter_archive(SAMPLE) if isinstance(item, Post)][:count]
    decisions = Classifier(load_profile("baltimore")).classify(posts)
    return posts, {d.issue.id for d in decisions if d.issue is not None}


def issue_ids(url: str) -> list[uuid.UUID]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            ids = connection.scalars(sqlalchemy.text("SELECT id FROM issues")).all()
    except sqlalchemy.exc.ProgrammingError:  # the sink has not created the table yet
        return []
    finally:
        engine.dispose()
    return [uuid.UUID(str(i)) for i in ids]


def assert_each_once(url: str, expected: set[uuid.UUID]) -> None:
    """Every expected issue is stored, once, and nothing else."""
    stored = issue_ids(url)
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected


def send_posts(producer: KafkaBusProducer, topic: str, posts: list[Post]) -> None:
    for each in posts:
        producer.send(topic, each.to_bytes(), key=each.id.encode())
    producer.flush()


def kafka_setup(bootstrap: str, prefix: str) -> tuple[BusSettings, Topics, KafkaBus]:
    settings = BusSettings(
        kind="kafka", bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=2
    )
    topics = Topics.for_city(prefix, "baltimore")
    bus = KafkaBus(settings, topics)
    bus.ensure_topics()
    return settings, topics, bus


MALFORMED_POSTS = [
    b"{broken",
    b"\xff\xfe\x00 not even text",
    b'{"schema_version": 99, "id": "reddit:t3_future"}',
    b"[1, 2, 3]",
    b'{"schema_version": 1, "id": "myspace:1", "platform": "myspace"}',
]
MALFORMED_ISSUES = [b"not an issue", b'{"schema_version": 1, "id": "not-a-uuid"}']


def test_malformed_messages_in_each_topic_are_dead_lettered_and_the_stages_go_on(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    postgres_schema_url: str,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    prefix = kafka_topic_prefix.rstrip(".")
    bus_settings, topics, bus = kafka_setup(kafka_bootstrap, prefix)
    posts, expected = sample_posts(300)
    assert len(expected) >= 3
    producer = bus.producer()
    # Good and bad interleaved, so each bad message sits mid-batch among good ones.
    for n, raw in enumerate(MALFORMED_POSTS):
        send_posts(producer, topics.posts, posts[n * 60 : (n + 1) * 60])
        producer.send(topics.posts, raw, key=f"bad-{n}".encode())
    for n, raw in enumerate(MALFORMED_ISSUES):
        producer.send(topics.issues, raw, key=f"bad-issue-{n}".encode())
    producer.flush()
    producer.close()
    env = {
        **base_environment(kafka_bootstrap, prefix, tmp_path),
        "OVERHEARD_DATABASE__URL": postgres_schema_url,
    }
    port = free_port()
    daemon = Daemon(["--sink", "sql", "--health-port", str(port)], env, tmp_path / "run.log")
    daemons.append(daemon)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    total_posts = len(posts) + len(MALFORMED_POSTS)
    try:
        wait_for(
            lambda: (
                committed(admin, f"{prefix}.baltimore.classify") == total_posts
                and committed(admin, f"{prefix}.baltimore.sink.sql")
                == end_offset(kafka_bootstrap, topics.issues)
                and len(issue_ids(postgres_schema_url)) >= len(expected)
            ),
            "every message consumed and committed",
            daemon,
        )
    finally:
        admin.close()
    exported = get(f"http://127.0.0.1:{port}/metrics")
    assert exported is not None
    assert daemon.process.poll() is None, "a stage died of a malformed message"
    assert daemon.stop(signal.SIGTERM) == 0, daemon.tail()

    assert_each_once(postgres_schema_url, expected)
    letters = parse(read_kafka(bus_settings, topics.deadletters))
    by_stage = {
        stage: [s.letter for s in letters if s.letter.stage == stage]
        for stage in ("classify", "sink")
    }
    assert sorted(letter.original for letter in by_stage["classify"]) == sorted(MALFORMED_POSTS)
    assert sorted(letter.original for letter in by_stage["sink"]) == sorted(MALFORMED_ISSUES)
    for letter in by_stage["classify"] + by_stage["sink"]:
        assert letter.reason, letter
        assert letter.error in {"MalformedMessage", "UnsupportedSchemaVersion"}
    assert all(ltr.origin.startswith(f"{topics.posts}[") for ltr in by_stage["classify"])
    assert all(ltr.origin.startswith(f"{topics.issues}[") for ltr in by_stage["sink"])
    assert {ltr.error for ltr in by_stage["classify"]} == {
        "MalformedMessage",
        "UnsupportedSchemaVersion",
    }
    dead = exported.text
    counted = metric(
        dead, 'overheard_deadletters_total{reason="MalformedMessage",stage="classify"}'
    ) + metric(
        dead, 'overheard_deadletters_total{reason="UnsupportedSchemaVersion",stage="classify"}'
    )
    assert counted == len(MALFORMED_POSTS)
    assert metric(
        dead, 'overheard_deadletters_total{reason="MalformedMessage",stage="sink"}'
    ) == len(MALFORMED_ISSUES)


def test_postgresql_unreachable_then_back_is_retried_not_skipped_nor_dead_lettered(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    postgres_schema_url: str,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    prefix = kafka_topic_prefix.rstrip(".")
    bus_settings, topics, bus = kafka_setup(kafka_bootstrap, prefix)
    posts, expected = sample_posts(400)
    first, second = posts[:200], posts[200:]
    expected_first = sample_posts(200)[1]
    assert expected_first and expected - expected_first
    url = make_url(postgres_schema_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port)
    env = {
        **base_environment(kafka_bootstrap, prefix, tmp_path),
        "OVERHEARD_DATABASE__URL": through_proxy.render_as_string(hide_password=False),
        # Short waits between retries, so the test does not idle through the backoff.
        "OVERHEARD_RETRY__MAX_S": "2",
    }
    port = free_port()
    health = f"http://127.0.0.1:{port}"
    daemon = Daemon(["--sink", "sql", "--health-port", str(port)], env, tmp_path / "run.log")
    daemons.append(daemon)
    producer = bus.producer()
    try:
        send_posts(producer, topics.posts, first)
        wait_for(
            lambda: set(issue_ids(postgres_schema_url)) == expected_first,
            "the first posts' issues written",
            daemon,
        )

        proxy.stop()  # PostgreSQL becomes unreachable
        send_posts(producer, topics.posts, second)

        def sink_not_ready() -> bool:
            answer = get(f"{health}/readyz")
            if answer is None or answer.status_code != 503:
                return False
            checks = {c["name"]: c for c in answer.json()["checks"]}
            return checks.get("sink:sql", {}).get("ok") is False

        wait_for(sink_not_ready, "/readyz to say the sink is not ready", daemon)
        wait_for(lambda: daemon.logged("sink sql failed"), "a logged sink retry", daemon)
        assert set(issue_ids(postgres_schema_url)) == expected_first

        proxy.start()  # back
        wait_for(
            lambda: len(issue_ids(postgres_schema_url)) >= len(expected),
            "every issue written after the outage",
            daemon,
        )

        def ready() -> bool:
            answer = get(f"{health}/readyz")
            return answer is not None and answer.status_code == 200

        wait_for(ready, "/readyz ready again", daemon)
        exported = get(f"{health}/metrics")
        assert exported is not None
    finally:
        producer.close()
    assert daemon.stop(signal.SIGTERM) == 0, daemon.tail()
    proxy.stop()

    assert_each_once(postgres_schema_url, expected)
    assert read_kafka(bus_settings, topics.deadletters) == []
    assert metric(exported.text, 'overheard_retries_total{operation="sink write"}') >= 1


def test_a_broker_outage_mid_stream_loses_nothing_and_readyz_says_not_ready(
    kafka_node: KafkaCluster,
    kafka_topic_prefix: str,
    postgres_schema_url: str,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    """The only broker stopped for 20 seconds mid-stream, then started again with its log."""
    prefix = kafka_topic_prefix.rstrip(".")
    _, topics, bus = kafka_setup(kafka_node.bootstrap, prefix)
    posts, expected = sample_posts(600)
    producer = bus.producer()
    send_posts(producer, topics.posts, posts)
    producer.close()
    env = {
        **base_environment(kafka_node.bootstrap, prefix, tmp_path),
        "OVERHEARD_DATABASE__URL": postgres_schema_url,
        "OVERHEARD_HEALTH__PROBE_EVERY_S": "1",
        "OVERHEARD_RETRY__MAX_S": "2",
    }
    port = free_port()
    health = f"http://127.0.0.1:{port}"
    daemon = Daemon(["--sink", "sql", "--health-port", str(port)], env, tmp_path / "run.log")
    daemons.append(daemon)

    def readiness(of: str) -> bool | None:
        answer = get(f"{health}/readyz")
        if answer is None:
            return None
        return {c["name"]: c["ok"] for c in answer.json()["checks"]}.get(of)

    wait_for(lambda: len(issue_ids(postgres_schema_url)) > 0, "the first issues", daemon)
    assert len(issue_ids(postgres_schema_url)) < len(expected), "done before the outage"
    kafka_node.stop_node(0)
    wait_for(lambda: readiness("bus") is False, "/readyz to say the bus is down", daemon)
    time.sleep(20)  # the outage the issue asks for; nothing is measured against it
    assert daemon.process.poll() is None, daemon.tail()
    kafka_node.start_node(0)
    wait_for(
        lambda: len(issue_ids(postgres_schema_url)) >= len(expected),
        "every issue written after the outage",
        daemon,
        timeout_s=300,
    )
    wait_for(lambda: readiness("bus") is True, "/readyz to say the bus is back", daemon)
    assert daemon.stop(signal.SIGTERM) == 0, daemon.tail()
    assert_each_once(postgres_schema_url, expected)


def test_a_311_server_answering_503_and_429_is_retried_and_files_each_issue_once(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    postgres_schema_url: str,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    """The sink stage against the Open311 test server: 503s and 429s, then an outage."""
    prefix = kafka_topic_prefix.rstrip(".")
    bus_settings, topics, bus = kafka_setup(kafka_bootstrap, prefix)
    issues = [
        make_issue(f"t3_311_{n}", category="dirty alley", service_code="SW-Dirty Alley")
        for n in range(12)
    ]
    key = "open311-faults-key"
    with Open311Server.start(services="baltimore", api_key=key) as server:
        server.control(
            fail_next=[
                503,
                {"status": 429, "retry_after": 1},
                {"status": 503, "retry_after": 1},
                {"status": 429, "retry_after": 1},
            ]
        )
        producer = bus.producer()
        for issue in issues[:6]:
            producer.send(topics.issues, issue.to_bytes(), key=str(issue.id).encode())
        producer.flush()
        env = {
            **base_environment(kafka_bootstrap, prefix, tmp_path),
            "OVERHEARD_OPEN311__ENDPOINT": server.url,
            "OVERHEARD_OPEN311__API_KEY": key,
            "OVERHEARD_OPEN311__LEDGER_URL": postgres_schema_url,
            # Each issue its own request: the twelve reports of one alley would be a cluster.
            "OVERHEARD_OPEN311__CLUSTER": "false",
            "OVERHEARD_RETRY__MAX_S": "2",
        }
        port = free_port()
        daemon = Daemon(
            ["--stage", "sink", "--sink", "open311", "--health-port", str(port)],
            env,
            tmp_path / "run.log",
        )
        daemons.append(daemon)
        wait_for(lambda: len(server.requests()) == 6, "the first issues filed", daemon)
        server.control(fail_for_s=5, fail_status=503)  # an outage mid-stream
        for issue in issues[6:]:
            producer.send(topics.issues, issue.to_bytes(), key=str(issue.id).encode())
        producer.flush()
        producer.close()
        wait_for(lambda: len(server.requests()) >= len(issues), "every issue filed", daemon)
        exported = get(f"http://127.0.0.1:{port}/metrics")
        assert exported is not None
        assert daemon.stop(signal.SIGTERM) == 0, daemon.tail()
        filed = server.requests()
        answered = [r["status"] for r in server.received()]

    described = [r["form"]["description"] for r in filed]
    for issue in issues:
        assert sum(f"overheard issue {issue.id}" in d for d in described) == 1
    assert len(filed) == len(issues)
    assert answered.count(429) == 2 and answered.count(503) >= 3  # none of them was skipped
    ledger = Ledger(postgres_schema_url)
    entries = [ledger.get(issue.id) for issue in issues]
    assert all(e is not None and e.state == "filed" for e in entries), entries
    assert len({e.service_request_id for e in entries if e is not None}) == len(issues)
    assert read_kafka(bus_settings, topics.deadletters) == []
    assert metric(exported.text, 'overheard_retries_total{operation="sink write"}') >= 1
    assert metric(
        exported.text, 'overheard_issues_out_total{category="dirty alley",sink="open311"}'
    ) == len(issues)


def assigned(port: int) -> set[str]:
    """The posts partitions a classify process reports lag for: the ones it owns."""
    answer = get(f"http://127.0.0.1:{port}/metrics")
    if answer is None:
        return set()
    found = re.findall(r'overheard_consumer_lag\{partition="(\d+)",stage="classify"', answer.text)
    return set(found)


def test_two_classify_processes_share_the_partitions_and_one_takes_over_from_the_other(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    postgres_schema_url: str,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    prefix = kafka_topic_prefix.rstrip(".")
    _, topics, bus = kafka_setup(kafka_bootstrap, prefix)
    posts, expected = sample_posts(1000)
    env = {
        **base_environment(kafka_bootstrap, prefix, tmp_path),
        "OVERHEARD_DATABASE__URL": postgres_schema_url,
    }
    ports = [free_port(), free_port()]
    classify = [
        Daemon(["--stage", "classify", "--health-port", str(port)], env, tmp_path / f"c{n}.log")
        for n, port in enumerate(ports)
    ]
    sink = Daemon(["--stage", "sink", "--sink", "sql"], env, tmp_path / "sink.log")
    daemons.extend([*classify, sink])
    for daemon, port in zip(classify, ports, strict=True):
        wait_for(lambda port=port: bool(assigned(port)), "partitions assigned", daemon)
    wait_for(
        lambda: [assigned(port) for port in ports] in ([{"0"}, {"1"}], [{"1"}, {"0"}]),
        "one partition each",
        classify[0],
    )
    producer = bus.producer()
    send_posts(producer, topics.posts, posts)
    producer.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        wait_for(
            lambda: committed(admin, f"{prefix}.baltimore.classify") > 0, "progress", classify[0]
        )
    finally:
        admin.close()
    classify[0].process.kill()  # kill -9: no chance to commit or leave the group
    classify[0].process.wait()
    wait_for(lambda: assigned(ports[1]) == {"0", "1"}, "the survivor owning both", classify[1])
    wait_for(
        lambda: len(issue_ids(postgres_schema_url)) >= len(expected),
        "every issue written",
        classify[1],
        timeout_s=300,
    )
    for daemon in (classify[1], sink):
        assert daemon.stop(signal.SIGTERM) == 0, daemon.tail()
    assert_each_once(postgres_schema_url, expected)


def test_a_broker_of_three_killed_mid_stream_loses_nothing(
    kafka_cluster: KafkaCluster,
    kafka_topic_prefix: str,
    postgres_schema_url: str,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    """Replication factor 3, min.insync.replicas 2: the pipeline carries on without one broker.

    overheard creates the topics itself from `bus.replication_factor` and
    `bus.min_insync_replicas`, and the cluster is asked whether they have them.
    """
    prefix = kafka_topic_prefix.rstrip(".")
    topics = Topics.for_city(prefix, "baltimore")
    settings = BusSettings(
        kind="kafka",
        bootstrap_servers=kafka_cluster.bootstrap,
        topic_prefix=prefix,
        partitions=2,
        replication_factor=3,
        min_insync_replicas=2,
    )
    bus = KafkaBus(settings, topics)
    bus.ensure_topics()
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap)
    try:
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics.all()]
        )["topic"]
        described = admin.describe_topics(list(topics.all()))
    finally:
        admin.close()
    for topic in topics.all():
        assert configs[topic]["min.insync.replicas"]["value"] == "2"
    assert {len(p["replica_nodes"]) for d in described for p in d["partitions"]} == {3}
    posts, expected = sample_posts(1000)
    producer = bus.producer()
    send_posts(producer, topics.posts, posts)
    producer.close()
    env = {
        **base_environment(kafka_cluster.bootstrap, prefix, tmp_path),
        "OVERHEARD_BUS__REPLICATION_FACTOR": "3",
        "OVERHEARD_BUS__MIN_INSYNC_REPLICAS": "2",
        "OVERHEARD_DATABASE__URL": postgres_schema_url,
        "OVERHEARD_RETRY__MAX_S": "2",
    }
    daemon = Daemon(["--sink", "sql"], env, tmp_path / "run.log")
    daemons.append(daemon)
    wait_for(lambda: len(issue_ids(postgres_schema_url)) > 0, "the first issues", daemon)
    assert len(issue_ids(postgres_schema_url)) < len(expected), "done before the kill"
    kafka_cluster.kill_node(1)
    wait_for(
        lambda: len(issue_ids(postgres_schema_url)) >= len(expected),
        "every issue written with a broker down",
        daemon,
        timeout_s=300,
    )
    assert daemon.stop(signal.SIGTERM) == 0, daemon.tail()
    assert_each_once(postgres_schema_url, expected)


def copies_of_the_sample(path: Path, copies: int) -> Path:
    """The sample archive `copies` times over, each copy's post ids made distinct."""
    with SAMPLE.open(newline="") as source:
        rows = list(csv.DictReader(source))
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        for copy in range(copies):
            for row in rows:
                writer.writerow(
                    {**row, "id": f"{row['id']}c{copy}", "name": f"{row['name']}c{copy}"}
                )
    return path


def test_stages_killed_at_random_points_and_restarted_leave_every_issue_once(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    postgres_schema_url: str,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    """kill -9 of ingest, classify and sink, again and again: SQL and 311 get each issue once."""
    prefix = kafka_topic_prefix.rstrip(".")
    bus_settings, topics, _ = kafka_setup(kafka_bootstrap, prefix)
    archive = copies_of_the_sample(tmp_path / "feed.csv", 3)
    gazetteers = tmp_path / "gazetteer"
    posts = [item for item, _ in iter_archive(archive) if isinstance(item, Post)]
    profile = load_profile("baltimore")
    decisions = Classifier(profile, locator_for(profile, gazetteers)).classify(posts)
    expected = {d.issue.id for d in decisions if d.issue is not None}
    #: Those the profile routes to 311 (the others the open311 sink leaves alone).
    routed = {d.issue.id for d in decisions if d.issue is not None and d.issue.to_311}
    assert len(posts) == 3000 and len(expected) >= 30
    key = "open311-kill-key"
    rng = random.Random(7)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    with Open311Server.start(services="baltimore", api_key=key) as server:
        env = {
            **base_environment(kafka_bootstrap, prefix, tmp_path),
            "OVERHEARD_GEO__ENABLED": "true",
            "OVERHEARD_GEO__GAZETTEER_DIR": str(gazetteers),
            "OVERHEARD_SINKS": '["sql", "open311"]',
            "OVERHEARD_DATABASE__URL": postgres_schema_url,
            "OVERHEARD_OPEN311__ENDPOINT": server.url,
            "OVERHEARD_OPEN311__API_KEY": key,
            "OVERHEARD_OPEN311__LEDGER_URL": postgres_schema_url,
            # Each issue its own request (the sample's copies would cluster): what is
            # checked is that each is filed once.
            "OVERHEARD_OPEN311__CLUSTER": "false",
            "OVERHEARD_INGEST__CHECKPOINT_EVERY": "100",
        }
        args = {
            "ingest": ["--stage", "ingest", "--archive", str(archive)],
            "classify": ["--stage", "classify"],
            "sink": ["--stage", "sink"],
        }
        running: dict[str, Daemon] = {}

        def start(stage: str) -> None:
            log = tmp_path / f"{stage}-{len(daemons)}.log"
            running[stage] = Daemon(args[stage], env, log)
            daemons.append(running[stage])

        for stage in args:
            start(stage)
        try:
            wait_for(
                lambda: committed(admin, f"{prefix}.baltimore.classify") > 0,
                "a first commit",
                running["classify"],
            )
            for _ in range(6):
                stage = rng.choice(list(args))
                time.sleep(rng.uniform(0.5, 4.0))  # a random point in the stream
                running[stage].kill()
                start(stage)
            wait_for(
                lambda: running["ingest"].process.poll() is not None, "ingest", running["ingest"]
            )
            assert running["ingest"].process.returncode == 0, running["ingest"].tail()

            def done() -> bool:
                issues_end = end_offset(kafka_bootstrap, topics.issues)
                return (
                    committed(admin, f"{prefix}.baltimore.classify")
                    == end_offset(kafka_bootstrap, topics.posts)
                    and committed(admin, f"{prefix}.baltimore.sink.sql") == issues_end
                    and committed(admin, f"{prefix}.baltimore.sink.open311") == issues_end
                )

            wait_for(done, "every stage caught up", running["sink"], timeout_s=300)
        finally:
            admin.close()
        for stage in ("classify", "sink"):
            assert running[stage].stop(signal.SIGTERM) == 0, running[stage].tail()
        filed_requests = server.requests()

    assert_each_once(postgres_schema_url, expected)
    ledger = Ledger(postgres_schema_url)
    entries = {issue_id: ledger.get(issue_id) for issue_id in routed}
    # On the server (filed, or accepted with a token, or filed with a blackbox service).
    filed = {i for i, e in entries.items() if e is not None and e.state in DONE}
    rejected = {
        Issue.from_bytes(s.letter.original).id
        for s in parse(read_kafka(bus_settings, topics.deadletters))
        if s.letter.stage == "sink"
    }
    assert filed, "no issue reached the 311 server"
    assert filed | rejected == routed, {i: entries[i] for i in routed - filed - rejected}
    assert not filed & rejected
    described = [r["form"]["description"] for r in filed_requests]
    for issue_id in filed:
        assert sum(f"overheard issue {issue_id}" in d for d in described) == 1
    assert len(filed_requests) == len(filed)
