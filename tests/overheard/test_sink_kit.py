"""The conformance kit itself: it passes a correct sink and fails wrong ones, for the right reason.

Each case runs pytest in-process (pytester) on a generated test module that
subclasses the kit, as an integrator's would.
"""

from __future__ import annotations

import textwrap
from importlib.metadata import entry_points

import pytest

from overheard.model import Issue
from overheard.testing import sink_kit
from overheard.testing.sink_kit import POSTED_ON, SinkConformance, make_issue, make_issues

pytest_plugins = ["pytester"]

#: Sinks over an in-memory "database" that outlives them, so restarts can be checked.
SINKS = '''
import logging
from contextlib import contextmanager

import pytest

from overheard.errors import TransientError
from overheard.sinks.base import WRITTEN, BaseSink, Rejected, Retry
from overheard.testing.sink_kit import SinkConformance, make_issues

SECRET = "hunter2-api-key"
log = logging.getLogger("integrator.sink")


class Store:
    def __init__(self):
        self.records = []
        self.forgotten = set()
        self.notes = []
        self.down = False


#: What a badly written sink could look up about the kit's authors: issue id -> raw id.
RAW_AUTHORS = {
    str(issue.id): issue.post.author.id for issue in make_issues(600)
}


class GoodSink(BaseSink):
    name = "good"

    def __init__(self, store):
        self.store = store

    def __repr__(self):
        return "GoodSink(api_key=***)"

    def write(self, issues):
        if self.store.down:
            raise TransientError("the store is down")
        held = {r.id for r in self.store.records} | self.store.forgotten
        for issue in issues:
            if issue.id not in held:
                self.store.records.append(issue)
                held.add(issue.id)
        log.debug("wrote %d issues", len(issues))
        return [WRITTEN] * len(issues)


    def forget(self, post_id=None, author_key=None):
        gone = [
            r for r in self.store.records
            if r.post.id == post_id or (author_key and r.post.author.key == author_key)
        ]
        self.store.records = [r for r in self.store.records if r not in gone]
        self.store.forgotten.update(r.id for r in gone)
        return len(gone)


class RawAuthorSink(GoodSink):
    """Looks the raw author up again (here: from a side table) and stores it."""

    def write(self, issues):
        for issue in issues:
            self.store.notes.append(RAW_AUTHORS.get(str(issue.id), ""))
        return super().write(issues)


class PretendsToForget(GoodSink):
    """Says it forgot, keeps everything."""

    def forget(self, post_id=None, author_key=None):
        return 1


class DuplicatingSink(GoodSink):
    """Appends whatever it is given."""

    def write(self, issues):
        if self.store.down:
            raise TransientError("the store is down")
        self.store.records.extend(issues)
        return [WRITTEN] * len(issues)


class RejectsWhenDown(GoodSink):
    def write(self, issues):
        if self.store.down:
            return [Rejected("the store is down")] * len(issues)
        return super().write(issues)


class RaisesWhenDown(GoodSink):
    def write(self, issues):
        if self.store.down:
            raise ConnectionError("the store is down")
        return super().write(issues)


class RetriesWhenDown(GoodSink):
    def write(self, issues):
        if self.store.down:
            return [Retry("the store is down", delay=0.1)] * len(issues)
        return super().write(issues)


class OneOutcomePerDistinctIssue(GoodSink):
    def write(self, issues):
        super().write(issues)
        return [WRITTEN] * len({issue.id for issue in issues})


class LeakySink(GoodSink):
    def write(self, issues):
        log.debug("POST with key %s", SECRET)
        return super().write(issues)


class Base(SinkConformance):
    kind = GoodSink

    @pytest.fixture
    def store(self):
        return Store()

    @pytest.fixture
    def sink(self, store):
        return lambda: self.kind(store)

    @pytest.fixture
    def read_back(self, store):
        return lambda: [issue.id for issue in store.records]

    @pytest.fixture
    def make_unavailable(self, store):
        @contextmanager
        def down(sink):
            store.down = True
            try:
                yield
            finally:
                store.down = False

        return down

    @pytest.fixture
    def secrets(self):
        return [SECRET]

    @pytest.fixture
    def stored_text(self, store):
        return lambda: repr(store.records) + repr(store.notes)
'''

ALL_CHECKS = sorted(name for name in dir(SinkConformance) if name.startswith("test_"))
IDEMPOTENCY = [
    "test_a_batch_mixing_new_and_written_issues",
    "test_a_redelivered_issue_is_written_and_stored_once",
    "test_a_restarted_sink_stores_a_redelivery_once",
    "test_a_target_that_is_down_means_retry_never_rejected",
    "test_forget_removes_text_and_author_once",
    "test_the_same_issue_twice_in_one_batch_is_stored_once",
]


def run_kit(pytester: pytest.Pytester, body: str) -> dict[str, str]:
    """Run the kit on a generated module; the outcome of each check by name."""
    pytester.makepyfile(test_integrator=SINKS + textwrap.dedent(body))
    recorded = pytester.inline_run("-p", "no:cacheprovider")
    outcomes: dict[str, str] = {}
    for report in recorded.getreports("pytest_runtest_logreport"):
        name = report.nodeid.rsplit("::", 1)[-1]
        if report.when == "call" or report.outcome != "passed":
            outcomes.setdefault(name, report.outcome)
    return outcomes


def test_the_checks_are_the_ones_documented() -> None:
    assert ALL_CHECKS == [
        "test_a_batch_mixing_new_and_written_issues",
        "test_a_large_batch",
        "test_a_redelivered_issue_is_written_and_stored_once",
        "test_a_restarted_sink_stores_a_redelivery_once",
        "test_a_target_that_is_down_means_retry_never_rejected",
        "test_an_empty_batch_writes_nothing",
        "test_forget_removes_text_and_author_once",
        "test_is_a_sink_with_a_name",
        "test_issues_of_one_post_in_two_cities_are_two_records",
        "test_no_raw_author_reaches_the_storage_by_default",
        "test_secrets_are_never_logged_or_shown",
        "test_the_same_issue_twice_in_one_batch_is_stored_once",
        "test_writes_a_batch_with_one_outcome_per_issue_in_order",
    ]


def test_a_correct_sink_passes_every_check(pytester: pytest.Pytester) -> None:
    outcomes = run_kit(
        pytester,
        """
        class TestGood(Base):
            kind = GoodSink

        class TestRetries(Base):
            kind = RetriesWhenDown
        """,
    )
    assert outcomes == {name: "passed" for name in ALL_CHECKS}


def test_a_sink_that_stores_duplicates_fails_the_idempotency_checks(
    pytester: pytest.Pytester,
) -> None:
    outcomes = run_kit(pytester, "class TestDuplicating(Base):\n    kind = DuplicatingSink\n")
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    assert failed == IDEMPOTENCY
    assert len(outcomes) == len(ALL_CHECKS)


@pytest.mark.parametrize("kind", ["RejectsWhenDown", "RaisesWhenDown"])
def test_a_sink_that_misclassifies_a_transient_failure_fails(
    pytester: pytest.Pytester, kind: str
) -> None:
    outcomes = run_kit(pytester, f"class TestWrong(Base):\n    kind = {kind}\n")
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    assert failed == ["test_a_target_that_is_down_means_retry_never_rejected"]


def test_the_failure_says_what_is_wrong(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_integrator=SINKS + "class TestWrong(Base):\n    kind = RejectsWhenDown\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "down")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*must give Retry (or TransientError), never Rejected*"])


def test_a_sink_with_too_few_outcomes_fails(pytester: pytest.Pytester) -> None:
    outcomes = run_kit(pytester, "class TestShort(Base):\n    kind = OneOutcomePerDistinctIssue\n")
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    assert failed == ["test_the_same_issue_twice_in_one_batch_is_stored_once"]


def test_a_sink_that_logs_a_secret_fails(pytester: pytest.Pytester) -> None:
    outcomes = run_kit(pytester, "class TestLeaky(Base):\n    kind = LeakySink\n")
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    assert failed == ["test_secrets_are_never_logged_or_shown"]


def test_a_sink_that_stores_raw_authors_fails(pytester: pytest.Pytester) -> None:
    outcomes = run_kit(pytester, "class TestRaw(Base):\n    kind = RawAuthorSink\n")
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    assert failed == ["test_no_raw_author_reaches_the_storage_by_default"]


def test_a_sink_that_only_pretends_to_forget_fails(pytester: pytest.Pytester) -> None:
    outcomes = run_kit(pytester, "class TestPretends(Base):\n    kind = PretendsToForget\n")
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    assert failed == ["test_forget_removes_text_and_author_once"]


def test_optional_checks_skip_without_their_fixtures(pytester: pytest.Pytester) -> None:
    outcomes = run_kit(
        pytester,
        """
        class TestMinimal(SinkConformance):
            @pytest.fixture
            def store(self):
                return Store()

            @pytest.fixture
            def sink(self, store):
                return lambda: GoodSink(store)

            @pytest.fixture
            def read_back(self, store):
                return lambda: store.records  # Issue objects are fine too
        """,
    )
    assert outcomes == {
        name: "skipped"
        if name
        in (
            "test_a_target_that_is_down_means_retry_never_rejected",
            "test_no_raw_author_reaches_the_storage_by_default",
            "test_secrets_are_never_logged_or_shown",
        )
        else "passed"
        for name in ALL_CHECKS
    }


def test_the_kit_is_installed_as_a_pytest_plugin(request: pytest.FixtureRequest) -> None:
    """Installing overheard registers the kit through the `pytest11` entry point."""
    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "overheard_sinks"]
    assert entry.value == "overheard.testing.sink_kit"
    assert request.config.pluginmanager.get_plugin("overheard_sinks") is sink_kit


def test_the_kit_makes_different_realistic_issues_posted_on_one_day() -> None:
    issues = make_issues(50)
    assert len({issue.id for issue in issues}) == 50
    assert {issue.post.created_at.date() for issue in issues} == {POSTED_ON}
    assert sum(issue.location is None for issue in issues) == 10
    assert Issue.from_bytes(make_issue(7).to_bytes()) == make_issue(7)
    assert sink_kit.__all__ == [
        "POSTED_ON",
        "IssueMaker",
        "SinkConformance",
        "make_issue",
        "make_issues",
    ]
