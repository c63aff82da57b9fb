"""The sink conformance kit: a ready test class for anyone who writes an overheard sink.

Modelled on SQLAlchemy's dialect compliance suite: subclass `SinkConformance` in
your own test module (its name must start with ``Test``), provide two fixtures,
and pytest runs every check of the sink contract against your sink::

    import pytest
    from overheard.testing.sink_kit import SinkConformance

    class TestMySinkConformance(SinkConformance):
        @pytest.fixture
        def sink(self, tmp_path):
            # A factory: each call builds a new, *unopened* sink on the same storage.
            return lambda: MySink(tmp_path / "store")

        @pytest.fixture
        def read_back(self, tmp_path):
            # Everything the storage holds: one entry per record, duplicates included.
            return lambda: MyStore(tmp_path / "store").issue_ids()

The kit opens every sink it builds and closes it at the end of the test. The
entries `read_back` returns may be issue ids (`str` or `uuid.UUID`), `Issue`
objects, or mappings with an ``"id"`` key.

Optional fixtures, which skip the checks that need them when left out:

- ``make_unavailable``: a callable taking the opened sink and returning a context
  manager inside which the sink's target fails transiently (down, locked, full).
  The sink must then raise `TransientError` or return `Retry`, never `Rejected`,
  and must write everything once the block has ended.
- ``secrets``: strings (passwords, tokens, HMAC keys) that must never appear in a
  log record, in the sink's ``repr`` or in an error it raises.
- ``issue_maker``: the issues to write, for a sink that must refuse some of the kit's
  own (a 311 sink whose services need a location, or other service codes): a callable
  ``(count, *, start=0, city="baltimore") -> list[Issue]``; `make_issues` by default.
- ``stored_text``: a callable returning everything the sink's storage holds (and, for a
  sink that sends issues on, what the receiver got) as one string. With it the kit checks
  that issues written as the runtime writes them (through `overheard.privacy.PrivateSink`)
  leave no raw author id or handle there, and that `forget` removes the post's text.
- ``forget_removes_text``: False for a sink whose `forget` only records the request
  because the text went to someone else (the open311 sink); True by default.

Sinks with the optional ``forget`` capability (`overheard.sinks.base.Forgetting`) are
checked for it: a forgotten post's text and author are gone (with ``stored_text``), a
repeat changes nothing, and a redelivered issue does not bring them back.

``from overheard.testing.sink_kit import SinkConformance`` is all a test module needs.
Installing overheard also registers this module as a pytest plugin (entry point
``pytest11``, name ``overheard_sinks``); it defines no hooks, but pytest then rewrites
its asserts, so failures show the values compared.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from overheard.errors import TransientError
from overheard.model import (
    Author,
    Category,
    Issue,
    Location,
    Platform,
    Post,
    Precision,
    Provenance,
    Scores,
    Span,
    Thread,
    Versions,
)
from overheard.privacy import PrivateSink, Pseudonymiser
from overheard.sinks.base import Forgetting, Rejected, Retry, Sink, Written

__all__ = ["POSTED_ON", "IssueMaker", "SinkConformance", "make_issue", "make_issues"]

#: The UTC day every post of the kit's issues was made (for sinks that file issues by day).
POSTED_ON = date(2026, 11, 2)

_COMPLAINTS: tuple[tuple[str, str, str, str | None], ...] = (
    (
        "There's a pothole on Eastern Ave near Linwood that swallowed my front wheel. "
        "Three weeks now and nobody has fixed it.",
        "Eastern Ave near Linwood",
        "pothole",
        "TRM-Pothole Repair",
    ),
    (
        "Streetlight out again at N Charles St & E 25th St, the whole corner is pitch "
        "dark after 6pm 😡",
        "N Charles St & E 25th St",
        "streetlight",
        "ECC-Street Light Out",
    ),
    (
        "Trash cans overflowing on the 1200 block of W Baltimore St since Monday, rats "
        "everywhere. Résidents are fed up.",
        "1200 block of W Baltimore St",
        "trash",
        "SW-Dirty Street",
    ),
    (
        "Someone dumped a couch and two mattresses in the alley behind Patterson Park Ave.",
        "Patterson Park Ave",
        "illegal_dumping",
        None,
    ),
)


def make_issue(n: int = 0, *, city: str = "baltimore", located: bool = True) -> Issue:
    """A realistic issue, different for every `n`, posted on `POSTED_ON`."""
    text, place, category, service_code = _COMPLAINTS[n % len(_COMPLAINTS)]
    native = f"t1_kit{n:05d}"
    post = Post(
        id=Post.make_id(Platform.REDDIT, native),
        platform=Platform.REDDIT,
        url=f"https://www.reddit.com/r/baltimore/comments/kit/comment/{native}/",
        created_at=datetime.combine(POSTED_ON, time(), UTC) + timedelta(seconds=37 * n % 86400),
        author=Author(id=f"t2_resident{n % 7}", handle=f"resident_{n % 7}"),
        text=text,
        language="en",
        thread=Thread(subreddit="baltimore", conversation="reddit:t3_kit"),
        provenance=Provenance(
            connector="sink-kit",
            connector_version="1",
            collected_at=datetime(2026, 11, 3, 6, 0, tzinfo=UTC),
        ),
    )
    location = None
    if located:
        start = text.index(place)
        location = Location(
            lat=39.29 + (n % 100) / 10_000,
            lon=-76.61 + (n % 100) / 10_000,
            precision=Precision.INTERSECTION,
            span=Span(text=place, start=start, end=start + len(place)),
            source="gazetteer",
            confidence=0.8,
        )
    return Issue(
        id=Issue.id_for(city, post.id),
        city=city,
        post=post,
        category=Category(name=category, service_code=service_code),
        scores=Scores(complaint=0.91, category=0.86, locality=0.95),
        location=location,
        addresses_city=False,
        names_city=n % 2 == 0,
        decided_by="analysis:complaint-model",
        explanation=("complaint cue", f"category vocabulary: {category!r}"),
        versions=Versions(classifier="0.1.0", profile="2026.11.0"),
    )


def make_issues(count: int, *, start: int = 0, city: str = "baltimore") -> list[Issue]:
    """`count` different issues; every fifth has no location."""
    return [make_issue(n, city=city, located=n % 5 != 4) for n in range(start, start + count)]


#: What the `issue_maker` fixture returns: (count, *, start=0, city="baltimore") -> issues.
IssueMaker = Callable[..., list[Issue]]


def _record_id(record: Any) -> str:
    if isinstance(record, Issue):
        return str(record.id)
    if isinstance(record, Mapping):
        return str(uuid.UUID(str(record["id"])))
    return str(uuid.UUID(str(record)))


def _held(read_back: Callable[[], Iterable[Any]]) -> Counter[str]:
    """How many records the storage holds per issue id."""
    return Counter(_record_id(record) for record in read_back())


def _each_once(issues: Sequence[Issue]) -> Counter[str]:
    return Counter({str(issue.id): 1 for issue in issues})


def _check_outcomes(outcomes: Any, issues: Sequence[Issue]) -> None:
    assert isinstance(outcomes, list), f"write() must return a list, not {type(outcomes)}"
    assert len(outcomes) == len(issues), (
        f"write() returned {len(outcomes)} outcomes for {len(issues)} issues: "
        "there must be one outcome per issue, in the batch's order"
    )
    for position, outcome in enumerate(outcomes):
        assert isinstance(outcome, Written | Retry | Rejected), (
            f"outcome {position} is {outcome!r}, not Written, Retry or Rejected"
        )


def _all_written(outcomes: Any, issues: Sequence[Issue]) -> None:
    _check_outcomes(outcomes, issues)
    wrong = [
        (position, str(issue.id), outcome)
        for position, (issue, outcome) in enumerate(zip(issues, outcomes, strict=True))
        if not isinstance(outcome, Written)
    ]
    assert not wrong, (
        f"a healthy target must write every valid issue (a redelivered one counts as "
        f"written), but these were not (position, issue id, outcome): {wrong}"
    )


class SinkConformance:
    """Checks of the sink contract (`overheard.sinks.base`); see the module's docstring."""

    # -- fixtures the subclass provides --------------------------------------------------------

    @pytest.fixture
    def sink(self) -> Callable[[], Sink]:
        """A factory of new, unopened sinks on this test's storage (override it)."""
        pytest.fail("a SinkConformance subclass must provide a `sink` fixture")

    @pytest.fixture
    def read_back(self) -> Callable[[], Iterable[Any]]:
        """A callable returning every record the storage holds (override it)."""
        pytest.fail("a SinkConformance subclass must provide a `read_back` fixture")

    @pytest.fixture
    def make_unavailable(self) -> Callable[[Sink], ContextManager[Any]] | None:
        """Optional: makes the sink's target fail transiently inside a `with` block."""
        return None

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        """Optional: strings that must never be logged or shown."""
        return ()

    @pytest.fixture
    def issue_maker(self) -> IssueMaker:
        """Optional: the issues to write, for a sink that must refuse some of the kit's own
        (e.g. a 311 sink whose services need a location or other service codes). Takes
        ``(count, *, start=0, city="baltimore")`` and returns `count` different issues,
        the same ones for the same arguments, all of which the sink must be able to write."""
        return make_issues

    @pytest.fixture
    def stored_text(self) -> Callable[[], str] | None:
        """Optional: everything the storage holds (and receivers got), as one string."""
        return None

    @pytest.fixture
    def forget_removes_text(self) -> bool:
        """Optional: False when `forget` only records the request (a 311 sink)."""
        return True

    # -- the kit's own fixture -----------------------------------------------------------------

    @pytest.fixture
    def open_sink(self, sink: Callable[[], Sink]) -> Iterator[Callable[[], Sink]]:
        """Builds and opens a sink with the subclass's factory; closes it after the test."""
        opened: list[Sink] = []

        def build() -> Sink:
            made = sink()
            assert isinstance(made, Sink), (
                f"the `sink` fixture must return a factory of sinks; calling it gave {made!r}"
            )
            made.open()
            opened.append(made)
            return made

        yield build
        for made in reversed(opened):
            with contextlib.suppress(Exception):
                made.close()

    # -- the contract ----------------------------------------------------------------------------

    def test_is_a_sink_with_a_name(self, open_sink: Callable[[], Sink]) -> None:
        made = open_sink()
        assert isinstance(made.name, str) and made.name, "a sink needs a non-empty `name`"

    def test_writes_a_batch_with_one_outcome_per_issue_in_order(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        read_back: Callable[[], Iterable[Any]],
    ) -> None:
        issues = issue_maker(7)
        outcomes = open_sink().write(issues)
        _all_written(outcomes, issues)
        records = list(read_back())
        assert _held(lambda: records) == _each_once(issues), "the storage must hold each issue once"
        for record in records:
            if isinstance(record, Issue):
                assert record in issues, f"{record.id} was stored altered"

    def test_an_empty_batch_writes_nothing(
        self, open_sink: Callable[[], Sink], read_back: Callable[[], Iterable[Any]]
    ) -> None:
        made = open_sink()
        assert made.write([]) == [], "an empty batch has an empty list of outcomes"
        assert not _held(read_back), "an empty batch must store nothing"

    def test_a_large_batch(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        read_back: Callable[[], Iterable[Any]],
    ) -> None:
        issues = issue_maker(500)
        _all_written(open_sink().write(issues), issues)
        assert _held(read_back) == _each_once(issues)

    def test_the_same_issue_twice_in_one_batch_is_stored_once(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        read_back: Callable[[], Iterable[Any]],
    ) -> None:
        first, second = issue_maker(2)
        batch = [first, second, first, first]
        _all_written(open_sink().write(batch), batch)
        assert _held(read_back) == _each_once([first, second]), (
            "an issue repeated within a batch must be stored once (idempotent on Issue.id)"
        )

    def test_a_redelivered_issue_is_written_and_stored_once(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        read_back: Callable[[], Iterable[Any]],
    ) -> None:
        made = open_sink()
        (issue,) = issue_maker(1)
        _all_written(made.write([issue]), [issue])
        _all_written(made.write([issue]), [issue])
        assert _held(read_back) == _each_once([issue]), (
            "a redelivered issue must be stored once (idempotent on Issue.id)"
        )

    def test_a_batch_mixing_new_and_written_issues(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        read_back: Callable[[], Iterable[Any]],
    ) -> None:
        made = open_sink()
        issues = issue_maker(6)
        earlier = issues[:3]
        _all_written(made.write(earlier), earlier)
        mixed = [issues[3], issues[0], issues[4], issues[2], issues[5], issues[1]]
        _all_written(made.write(mixed), mixed)
        assert _held(read_back) == _each_once(issues)

    def test_issues_of_one_post_in_two_cities_are_two_records(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        read_back: Callable[[], Iterable[Any]],
    ) -> None:
        (baltimore,) = issue_maker(1, start=3)
        (annapolis,) = issue_maker(1, start=3, city="annapolis")
        assert baltimore.post.id == annapolis.post.id and baltimore.id != annapolis.id
        _all_written(open_sink().write([baltimore, annapolis]), [baltimore, annapolis])
        assert _held(read_back) == _each_once([baltimore, annapolis]), (
            "a sink is idempotent on Issue.id, not on the post's id"
        )

    def test_a_restarted_sink_stores_a_redelivery_once(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        read_back: Callable[[], Iterable[Any]],
    ) -> None:
        issues = issue_maker(5)
        before = open_sink()
        _all_written(before.write(issues[:3]), issues[:3])
        before.close()

        after = open_sink()  # a new sink, the same storage: the process restarted
        assert _held(read_back) == _each_once(issues[:3]), "closing must keep what was written"
        _all_written(after.write(issues), issues)
        assert _held(read_back) == _each_once(issues), (
            "after a restart, redelivered issues must not be stored again"
        )

    def test_a_target_that_is_down_means_retry_never_rejected(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        read_back: Callable[[], Iterable[Any]],
        make_unavailable: Callable[[Sink], ContextManager[Any]] | None,
    ) -> None:
        if make_unavailable is None:
            pytest.skip("no `make_unavailable` fixture: transient failures are not checked")
        made = open_sink()
        issues = issue_maker(4)
        _all_written(made.write(issues[:1]), issues[:1])
        with make_unavailable(made):
            _write_while_down(made, issues)
        _all_written(made.write(issues), issues)
        assert _held(read_back) == _each_once(issues), (
            "once the target is back, every issue must be stored, once"
        )

    def test_secrets_are_never_logged_or_shown(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        make_unavailable: Callable[[Sink], ContextManager[Any]] | None,
        secrets: Sequence[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        if not secrets:
            pytest.skip("no `secrets` fixture: nothing to look for")
        shown: list[str] = []
        with caplog.at_level(logging.DEBUG):
            made = open_sink()
            issues = issue_maker(3)
            made.write(issues)
            made.write(issues)
            if make_unavailable is not None:
                with make_unavailable(made):
                    try:
                        outcomes = made.write(issue_maker(2, start=3))
                    except Exception as exc:  # noqa: BLE001 - every message counts
                        shown.extend(_messages(exc))
                    else:
                        shown.extend(str(outcome) for outcome in outcomes)
            shown.append(repr(made))
            made.close()
        shown.extend(record.getMessage() for record in caplog.records)
        shown.extend(caplog.text.splitlines())
        leaks = sorted({secret for secret in secrets for text in shown if secret in text})
        assert not leaks, f"secrets appear in logs, reprs or errors: {len(leaks)} of them"

    # -- privacy ---------------------------------------------------------------------------------

    def test_no_raw_author_reaches_the_storage_by_default(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        stored_text: Callable[[], str] | None,
    ) -> None:
        if stored_text is None:
            pytest.skip("no `stored_text` fixture: what the storage holds cannot be searched")
        issues = issue_maker(7)
        _all_written(_as_the_runtime_writes(open_sink()).write(issues), issues)
        held = stored_text()
        raw = {v for i in issues for v in (i.post.author.id, i.post.author.handle) if v}
        leaked = sorted(value for value in raw if value in held)
        assert not leaked, (
            f"raw author ids or handles reached the storage: {leaked}; a sink must store "
            "only the pseudonym (Author.key) the runtime gives it"
        )

    def test_forget_removes_text_and_author_once(
        self,
        open_sink: Callable[[], Sink],
        issue_maker: IssueMaker,
        read_back: Callable[[], Iterable[Any]],
        stored_text: Callable[[], str] | None,
        forget_removes_text: bool,
    ) -> None:
        made = open_sink()
        if not isinstance(made, Forgetting):
            pytest.skip("the sink has no `forget`: it keeps no post text or author")
        private = _as_the_runtime_writes(made)
        made_issues = issue_maker(8)
        # Four texts, one author twice: issues n and n + 7 of the kit share an author.
        issues = [*made_issues[:4], made_issues[7]]
        _all_written(private.write(issues), issues)
        victim, others = issues[1], [i for i in issues if i is not issues[1]]
        first = made.forget(post_id=victim.post.id)
        assert isinstance(first, int) and first >= 1, (
            f"forgetting a post the sink holds must change something, and say so: {first!r}"
        )
        assert made.forget(post_id=victim.post.id) == 0, "forgetting twice changes nothing"
        _all_written(private.write(issues), issues)  # redelivered after the forget
        held = _held(read_back)
        assert all(held[str(i.id)] == 1 for i in others), "forget must touch only that post"
        assert held[str(victim.id)] <= 1, "a redelivered forgotten issue must not be stored again"
        if stored_text is not None and forget_removes_text:
            assert victim.post.text not in stored_text(), (
                "the forgotten post's text is still stored (or came back with a redelivery)"
            )
        author = issues[0].post.author.id
        assert author is not None and author == issues[4].post.author.id
        key = _KIT_PSEUDONYMS.key_of(author)
        assert key is not None
        assert made.forget(author_key=key) >= (1 if forget_removes_text else 0)
        assert made.forget(author_key=key) == 0, "forgetting an author twice changes nothing"
        if stored_text is not None and forget_removes_text:
            assert key not in stored_text(), "the forgotten author's pseudonym is still stored"


#: The pseudonymiser the kit writes with, as the runtime would with its configured key.
_KIT_PSEUDONYMS = Pseudonymiser(SecretStr("sink-kit-author-key"), "kit")


def _as_the_runtime_writes(made: Sink) -> Sink:
    """`made` as `overheard.sinks.registry.create_sink` hands it to the runtime."""
    return PrivateSink(made, _KIT_PSEUDONYMS, None)


def _write_while_down(made: Sink, issues: Sequence[Issue]) -> None:
    try:
        outcomes = made.write(issues)
    except TransientError:
        return
    except Exception as exc:  # noqa: BLE001 - the type is what is checked
        pytest.fail(
            f"a target that is down made write() raise {type(exc).__name__}: {exc}; "
            "raise TransientError (or return Retry) so that the runtime retries"
        )
    _check_outcomes(outcomes, issues)
    rejected = [
        str(issue.id) for issue, o in zip(issues, outcomes, strict=True) if isinstance(o, Rejected)
    ]
    assert not rejected, (
        f"a target that is down must give Retry (or TransientError), never Rejected: "
        f"{len(rejected)} issues would have been dead-lettered"
    )


def _messages(exc: BaseException) -> Iterator[str]:
    """The message and repr of an error and of every error in its chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        current = current.__cause__ or current.__context__
