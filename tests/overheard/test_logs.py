"""Logs: JSON lines or text, one event per decision with its ids, and no secret ever printed."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator, Sequence

import pytest

from overheard import logs
from overheard.bus.base import Topics
from overheard.bus.memory import MemoryBus
from overheard.classify.decide import Classifier
from overheard.daemon import guarded
from overheard.errors import TransientError
from overheard.model import Issue
from overheard.pipeline import Pipeline
from overheard.profile import load_profile
from overheard.retry import Stopped, retry_transient
from overheard.settings import RetrySettings, Settings, load_settings
from overheard.sinks.base import BaseSink, Outcome
from overheard.stages import ClassifyStage, SinkStage, StageRunner
from tests.factories import make_issue, post

FAST = RetrySettings(initial_s=0.001, max_s=0.01)
TOPICS = Topics.for_city("logs", "baltimore")

SECRETS = {
    "url": "Url-Pass-1",
    "database": "Db-Pass-2",
    "sasl": "Sasl-Pass-3",
    "webhook": "Hmac-Key-4",
    "open311": "Api-Key-5",
    "reddit": "Reddit-Secret-6",
}


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def capture() -> Iterator[Captured]:
    """Logs configured as `overheard run` configures them, into a string; removed after."""
    root = logging.getLogger()
    level = root.level
    yield Captured(io.StringIO())
    if logs._installed is not None:
        root.removeHandler(logs._installed)
    root.setLevel(level)


def settings_with_secrets(tmp_path) -> Settings:
    return load_settings(
        None,
        {
            "database": {
                "url": f"postgresql+psycopg://overheard:{SECRETS['url']}@127.0.0.1:9/overheard",
                "password": SECRETS["database"],
            },
            "bus": {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "overheard",
                "sasl_password": SECRETS["sasl"],
            },
            "webhook": {"url": "http://127.0.0.1:9/hook", "secret": SECRETS["webhook"]},
            "open311": {
                "endpoint": "http://127.0.0.1:9/open311/v2/",
                "api_key": SECRETS["open311"],
            },
            "reddit": {"client_id": "app", "client_secret": SECRETS["reddit"]},
            "geo": {"enabled": False},
            "ingest": {"checkpoint_dir": str(tmp_path / "checkpoints")},
        },
    )


def test_every_secret_of_the_settings_is_known_to_the_masker(tmp_path) -> None:
    found = set(logs.secrets_in(settings_with_secrets(tmp_path)))
    assert set(SECRETS.values()) <= found


class LeakySink(BaseSink):
    """A sink whose errors quote its credentials, as careless HTTP clients do."""

    name = "leaky"

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        raise RuntimeError(f"POST /requests.json?api_key={self.api_key} answered 401")


def test_secrets_are_masked_on_every_error_path(capture: Captured, tmp_path) -> None:
    settings = settings_with_secrets(tmp_path)
    logs.configure("DEBUG", "json", logs.secrets_in(settings), capture.stream)
    log = logging.getLogger("overheard.test")
    stopped = threading.Event()
    stopped.set()  # every retry gives up after logging its first failure

    # A bad database URL: the SQL sink cannot open, the retry logs why.
    pipeline = Pipeline.build(settings.model_copy(update={"sinks": ["sql"]}), stopped)
    with pytest.raises(Stopped):
        pipeline.open_sinks()
    # A careless line that prints the effective URL (the password put back into it).
    log.error("cannot reach %s", settings.database.effective_url())

    # The broker refusing authentication, quoting the credentials it was given.
    def authenticate() -> None:
        raise TransientError(
            f"SASL authentication failed for overheard/{SECRETS['sasl']} "
            f'(sasl.jaas.config password="{SECRETS["sasl"]}")'
        )

    with pytest.raises(Stopped):
        retry_transient(authenticate, settings.retry, stopped, "creating topics")

    # A sink error that quotes its API key, through the stage thread's guard (a traceback).
    bus = MemoryBus(TOPICS)
    producer = bus.producer()
    producer.send(TOPICS.issues, make_issue("t3_leak").to_bytes())
    producer.flush()
    runner = StageRunner.on(
        bus,
        SinkStage(LeakySink(SECRETS["open311"]), "sink", FAST, threading.Event()),
        TOPICS.issues,
        FAST,
        threading.Event(),
    )
    guarded("sink:leaky", lambda: runner.step(10, 0), threading.Event(), [])()

    # Secrets in extra fields, and a webhook signature key in an exception's message.
    log.warning("webhook refused", extra={"detail": f"key {SECRETS['webhook']} rejected"})
    try:
        raise ValueError(f"bad HMAC key {SECRETS['webhook']} / client {SECRETS['reddit']}")
    except ValueError:
        log.exception("webhook failed")

    text = capture.text
    for name, secret in SECRETS.items():
        assert secret not in text, f"the {name} secret leaked"
    events = capture.events()
    messages = " ".join(str(e["msg"]) for e in events)
    assert "opening sink sql failed" in messages
    assert "creating topics failed" in messages
    assert "cannot reach postgresql+psycopg://overheard:***@127.0.0.1:9/overheard" in messages
    leak = next(e for e in events if e["msg"] == "stage sink:leaky failed; stopping every stage "
                "(nothing is committed)")  # fmt: skip
    assert "api_key=***" in str(leak["exc"])
    assert any(e.get("detail") == "key *** rejected" for e in events)
    assert "bad HMAC key *** / client ***" in text


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_profile("baltimore"))


def test_one_json_event_per_decision_with_the_post_and_issue_ids(
    capture: Captured, classifier: Classifier
) -> None:
    logs.configure("DEBUG", "auto", (), capture.stream)  # not a terminal: JSON lines
    pothole = post("Huge pothole on Eastern Ave again", "t3_j1")
    quiet = post("Orioles win!", "t3_j2")
    bus = MemoryBus(TOPICS)
    producer = bus.producer()
    for each in (pothole, quiet):
        producer.send(TOPICS.posts, each.to_bytes())
    producer.flush()
    stage = ClassifyStage(classifier, TOPICS.issues, "classify")
    StageRunner.on(bus, stage, TOPICS.posts, FAST, threading.Event()).step(10, 0)

    events = [e for e in capture.events() if e["logger"] == "overheard.stages"]
    by_post = {e["post_id"]: e for e in events}
    assert set(by_post) == {pothole.id, quiet.id}
    issue_event = by_post[pothole.id]
    assert issue_event["issue_id"] == str(Issue.id_for("baltimore", pothole.id))
    assert issue_event["level"] == "INFO"
    assert issue_event["category"] == "pothole"
    assert "issue_id" not in by_post[quiet.id]
    assert by_post[quiet.id]["level"] == "DEBUG"
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in events)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_on_a_terminal_and_when_forced(capture: Captured) -> None:
    terminal = Terminal()
    logs.configure("INFO", "auto", ["s3cret"], terminal)
    logging.getLogger("overheard.test").info("hello s3cret", extra={"post_id": "reddit:t3_x"})
    line = terminal.getvalue()
    assert "INFO overheard.test: hello ***  post_id=reddit:t3_x" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)

    logs.configure("INFO", "text", [], capture.stream)
    logging.getLogger("overheard.test").info("plain")
    assert capture.text.rstrip().endswith("INFO overheard.test: plain")


def test_json_when_forced_on_a_terminal(capture: Captured) -> None:
    terminal = Terminal()
    logs.configure("INFO", "json", [], terminal)
    logging.getLogger("overheard.test").info("hello")
    assert json.loads(terminal.getvalue())["msg"] == "hello"
