"""The decision: is this post a local complaint the city should hear, and why.

The cascade of DESIGN.md, cheapest first: posts the classifier cannot judge
(another language, no words) and posts the prefilter's scan stops cost almost
nothing; the survivors are matched against the vocabulary; those that name no
subject of the profile's categories are settled there when the profile requires one
(`require_subject`), since the models could not make them issues; the rest are
scored by the trained models in one batch; the complaints among them are located;
the rules below decide. Every threshold comes from the city profile, and every step writes
a line of the explanation, tagged with the cascade stage that wrote it.

Without trained models the vocabulary decides alone (`versions.classifier` says
so on every issue): a problem phrase, or a subject next to a complaint cue.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, cast

from overheard.classify.prefilter import Hit, Prefilter
from overheard.classify.vocabulary import Kind, Vocabulary
from overheard.geo.locate import Locator
from overheard.model import Category, Issue, Platform, Post, Precision, Scores, Versions
from overheard.profile import OTHER, CityProfile

#: cascade/3: without a subject of the profile's categories (`require_subject`), a survivor
#: of the scan is settled before the models, which cannot make it an issue.
CASCADE_VERSION = "cascade/3"
#: The most characters of a post the models and the matcher read; the scan reads all.
MAX_JUDGED_CHARS = 5_000


class Outcome(StrEnum):
    NOT_JUDGED = "not_judged"  # another language, or no words at all
    STOPPED_BY_SCAN = "stopped_by_scan"  # nothing civic in it: the cheap pass stopped it
    NO_COMPLAINT = "no_complaint"  # not a complaint
    NOT_CIVIC = "not_civic"  # a complaint, but not about a problem a city service fixes
    ADDRESSED_CITY = "addressed_city"  # a complaint the city was already told about
    OUTSIDE_CITY = "outside_city"  # a complaint about a place outside the city
    ISSUE = "issue"


class Stage(StrEnum):
    """The step of the cascade that wrote a line of the explanation."""

    INPUT = "input"
    SCAN = "prefilter"
    MODELS = "models"
    LOCATE = "locate"
    DECIDE = "decide"


@dataclass(frozen=True)
class Step:
    stage: Stage
    text: str


@dataclass(frozen=True)
class Decision:
    post: Post
    outcome: Outcome
    steps: tuple[Step, ...]
    issue: Issue | None = None
    #: The step of the cascade that settled the outcome.
    decided_at: Stage = Stage.DECIDE

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(step.text for step in self.steps)


class TextScores(Protocol):
    complaint: float
    civic: float
    category: str
    category_score: float
    category_scores: Mapping[str, float]
    #: The model that gave `complaint` and `civic`, and its thresholds for them.
    model: str
    complaint_threshold: float
    civic_threshold: float


class TextScorer(Protocol):
    """The trained models as the cascade uses them (`classify.textmodels.TextModels`)."""

    version: str
    complaint_threshold: float
    civic_threshold: float

    def score(self, texts: Sequence[str]) -> Sequence[TextScores]: ...


@dataclass
class _Evidence:
    hits: list[Hit]
    by_kind: dict[Kind, list[Hit]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for hit in self.hits:
            for meaning in hit.meanings:
                self.by_kind.setdefault(meaning.kind, []).append(hit)

    def of(self, kind: Kind) -> list[Hit]:
        return self.by_kind.get(kind, [])

    def names_subject(self) -> bool:
        """A problem, topic or urgent phrase: a subject of one of the profile's categories."""
        return bool(self.of(Kind.PROBLEM) or self.of(Kind.TOPIC) or self.of(Kind.URGENT))


@dataclass
class _Trace:
    steps: list[Step] = field(default_factory=list)

    def add(self, stage: Stage, text: str) -> None:
        self.steps.append(Step(stage, text))

    def decision(
        self, post: Post, outcome: Outcome, stage: Stage, issue: Issue | None = None
    ) -> Decision:
        return Decision(post, outcome, tuple(self.steps), issue=issue, decided_at=stage)


#: The whole trace of a post the scan stopped (shared: steps are immutable).
_STOPPED = (Step(Stage.SCAN, "nothing of the profile's civic vocabulary: stopped"),)


def _quote(hit: Hit) -> str:
    return f"'{hit.text}' (chars {hit.start}-{hit.end})"


_NOT_WORDS = re.compile(r"https?://\S+|www\.\S+|[@#]\w+", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")
#: Language tags that say "no language" rather than naming one (X uses these).
_NO_LANGUAGE = {"und", "zxx", "qme", "qht", "qam", "qct", "art"}


class Classifier:
    """Decides, for a batch of posts, which are local complaints."""

    def __init__(
        self,
        profile: CityProfile,
        locator: Locator | None = None,
        models: TextScorer | None = None,
    ) -> None:
        """`locator` places complaints with the city's gazetteer and `models` scores
        the survivors of the scan; without them issues carry no location and the
        vocabulary decides alone."""
        self.profile = profile
        self.locator = locator
        self.models = models
        self.prefilter = Prefilter(Vocabulary.from_profile(profile))
        self._accounts = {
            Platform.X: {a.lower() for a in profile.accounts.x},
            Platform.REDDIT: {a.lower() for a in profile.accounts.reddit},
        }
        self._subreddits = {s.lower() for s in profile.community.subreddits}
        self._languages = {language.lower() for language in profile.city.languages}
        if models is not None:
            classifier = f"{CASCADE_VERSION}+{models.version}"
        else:
            classifier = f"{CASCADE_VERSION}+vocabulary-only"
        self.versions = Versions(classifier=classifier, profile=profile.city.version)

    # -- the cascade

    def classify(self, posts: Sequence[Post]) -> list[Decision]:
        decisions: list[Decision | None] = [None] * len(posts)
        survivors: list[tuple[int, str, _Trace]] = []
        scan = self.prefilter.scan
        for index, post in enumerate(posts):
            if not self._covers(post.language):
                trace = _Trace()
                self._trace_language(post, trace)
                decisions[index] = trace.decision(post, Outcome.NOT_JUDGED, Stage.INPUT)
            elif not scan(post.text):
                # Most posts end here: nothing is made for them that only survivors need.
                decisions[index] = Decision(
                    post, Outcome.STOPPED_BY_SCAN, _STOPPED, decided_at=Stage.SCAN
                )
            elif (judged := self._judgeable(post, trace := _Trace())) is None:
                decisions[index] = trace.decision(post, Outcome.NOT_JUDGED, Stage.INPUT)
            else:
                survivors.append((index, judged, trace))
        texts = [text for _, text, _ in survivors]
        evidence = [_Evidence(found) for found in self.prefilter.match(texts)]
        # Under `require_subject` a survivor that names no subject cannot be an issue
        # whatever the models say: it is settled here, and only the rest are scored.
        # Most survivors are such (words the scan lets through for the models' sake).
        weighed = [
            n
            for n, found in enumerate(evidence)
            if found.names_subject() or not self.profile.decision.require_subject
        ]
        scores: dict[int, TextScores | None] = dict.fromkeys(weighed)
        if self.models is not None and weighed:
            scored = self.models.score([texts[n] for n in weighed])
            scores = dict(zip(weighed, scored, strict=True))
        for n, ((index, _, trace), found) in enumerate(zip(survivors, evidence, strict=True)):
            post = posts[index]
            if n in scores:
                decisions[index] = self._decide(post, found, scores[n], trace)
            else:
                decisions[index] = self._without_subject(post, found, trace)
        return cast(list[Decision], decisions)

    def _covers(self, language: str | None) -> bool:
        """False for a post in a language the profile does not cover; an untagged post,
        or one tagged as no language, is judged."""
        if not language:
            return True
        language = language.lower()
        return (
            not self._languages
            or language in _NO_LANGUAGE
            or language.split("-")[0] in self._languages
        )

    def _trace_language(self, post: Post, trace: _Trace) -> None:
        covered = ", ".join(sorted(self._languages))
        trace.add(
            Stage.INPUT,
            f"written in '{post.language}', which the profile does not cover ({covered})",
        )

    def _judgeable(self, post: Post, trace: _Trace) -> str | None:
        """The text the cascade judges, or None (with the reason traced) when it cannot.
        Checked only on the scan's survivors: it costs more than the scan."""
        if not _LETTER.search(_NOT_WORDS.sub(" ", post.text)):
            trace.add(Stage.INPUT, "no words to judge: only links, mentions, emoji or symbols")
            return None
        if len(post.text) > MAX_JUDGED_CHARS:
            trace.add(
                Stage.INPUT,
                f"{len(post.text):,} characters: the first {MAX_JUDGED_CHARS:,} are judged",
            )
            return post.text[:MAX_JUDGED_CHARS]
        return post.text

    # -- the rules

    def _without_subject(self, post: Post, evidence: _Evidence, trace: _Trace) -> Decision:
        self._trace_found(evidence, trace)
        trace.add(
            Stage.DECIDE,
            "not civic here: the text names no subject of the profile's 311 categories, "
            "and the models alone do not make an issue (require_subject): they are not asked",
        )
        return trace.decision(post, Outcome.NOT_CIVIC, Stage.DECIDE)

    def _trace_found(self, evidence: _Evidence, trace: _Trace) -> None:
        found = [hit.text for hit in evidence.hits]
        trace.add(
            Stage.SCAN,
            "vocabulary found: " + (", ".join(f"'{text}'" for text in found) if found else "none"),
        )

    def _decide(
        self, post: Post, evidence: _Evidence, scored: TextScores | None, trace: _Trace
    ) -> Decision:
        rules = self.profile.decision
        self._trace_found(evidence, trace)

        weighed_at = Stage.SCAN if scored is None else Stage.MODELS
        vocabulary = self._vocabulary_complaint(evidence)
        complaint = self._complaint(vocabulary, scored, trace)
        if complaint is None:
            return trace.decision(post, Outcome.NO_COMPLAINT, weighed_at)
        complaint_score, decided_by = complaint
        if not self._civic(evidence, vocabulary, scored, trace):
            return trace.decision(post, Outcome.NOT_CIVIC, weighed_at)
        category_key, category_score = self._category(evidence, scored, trace)
        vocab = self.profile.categories[category_key]

        locality, locality_reason = self._locality(post, evidence)
        location = None
        if self.locator is not None:
            located = self.locator.locate_post(post)
            for reason in located.reasons:
                trace.add(Stage.LOCATE, reason)
            if not located.local:
                return trace.decision(post, Outcome.OUTSIDE_CITY, Stage.LOCATE)
            if located.location is not None and located.location.precision is not Precision.CITY:
                location = located.location
                if locality < rules.locality_place:
                    locality = rules.locality_place
                    locality_reason = f"located at {location.precision} precision"
        trace.add(Stage.DECIDE, f"locality {locality:.2f}: {locality_reason}")

        urgent = evidence.of(Kind.URGENT)
        to_311 = True
        if urgent:
            to_311 = rules.urgent_to_311
            where = "filed to 311 as well (urgent_to_311)" if to_311 else "not filed to 311"
            trace.add(
                Stage.DECIDE,
                f"urgent: {_quote(urgent[0])} belongs to emergency services; {where}",
            )
        addressed = self._addressed_account(post)
        if addressed is not None and not rules.keep_addressed:
            trace.add(Stage.DECIDE, f"addresses the city ({addressed}): the city already heard it")
            return trace.decision(post, Outcome.ADDRESSED_CITY, Stage.DECIDE)
        if addressed is not None:
            trace.add(
                Stage.DECIDE, f"addresses the city ({addressed}): kept, flagged (keep_addressed)"
            )
        trace.add(Stage.DECIDE, f"a local complaint: {category_key} ({vocab.label})")
        issue = Issue(
            id=Issue.id_for(self.profile.name, post.id),
            city=self.profile.name,
            post=post,
            category=Category(name=category_key, service_code=vocab.service_code),
            scores=Scores(
                complaint=complaint_score,
                category=category_score,
                locality=locality,
                civic=scored.civic if scored is not None else None,
            ),
            location=location,
            addresses_city=addressed is not None,
            names_city=bool(evidence.of(Kind.CITY)),
            urgent=bool(urgent),
            to_311=to_311,
            decided_by=decided_by,
            explanation=tuple(f"{step.stage}: {step.text}" for step in trace.steps),
            versions=self.versions,
        )
        return trace.decision(post, Outcome.ISSUE, Stage.DECIDE, issue=issue)

    def _vocabulary_complaint(self, evidence: _Evidence) -> tuple[float, str]:
        """The complaint score the vocabulary alone gives, with the reason."""
        rules = self.profile.decision
        if problems := evidence.of(Kind.PROBLEM):
            return rules.problem_score, f"{_quote(problems[0])} names a problem by itself"
        if urgent := evidence.of(Kind.URGENT):
            return rules.problem_score, f"{_quote(urgent[0])} names an emergency by itself"
        window = rules.cue_window
        subjects = evidence.of(Kind.TOPIC)
        for cue in evidence.of(Kind.CUE):
            for subject in subjects:
                if cue.start - window <= subject.end and subject.start - window <= cue.end:
                    return rules.cue_score, (
                        f"the subject {_quote(subject)} meets the complaint cue {_quote(cue)}"
                    )
        return 0.0, f"no problem phrase, and no complaint cue within {window} chars of a subject"

    def _complaint(
        self, vocabulary: tuple[float, str], scored: TextScores | None, trace: _Trace
    ) -> tuple[float, str] | None:
        """(complaint score, what decided) when the post is a complaint, else None.

        The model or the vocabulary can each say yes: the model reads how people
        complain, the vocabulary knows the city's problems by name."""
        rules = self.profile.decision
        vocabulary_score, reason = vocabulary
        vocabulary_says = vocabulary_score >= rules.min_complaint
        trace.add(
            Stage.SCAN,
            f"vocabulary complaint score {vocabulary_score:.2f} "
            f"{'≥' if vocabulary_says else '<'} min_complaint {rules.min_complaint}: {reason}",
        )
        if scored is None:
            return (vocabulary_score, "vocabulary") if vocabulary_says else None
        threshold = self.profile.decision.complaint_threshold or scored.complaint_threshold
        model_says = scored.complaint >= threshold
        trace.add(
            Stage.MODELS,
            f"complaint model ({scored.model}) {scored.complaint:.2f} "
            f"{'≥' if model_says else '<'} threshold {threshold:.2f}",
        )
        if model_says:
            return max(scored.complaint, vocabulary_score), "models"
        if vocabulary_says:
            return vocabulary_score, "vocabulary"
        if scored.civic >= rules.civic_report_threshold:
            trace.add(
                Stage.MODELS,
                f"civic model {scored.civic:.2f} ≥ civic_report_threshold "
                f"{rules.civic_report_threshold}: it reports a civic problem, a complaint",
            )
            return max(scored.complaint, scored.civic), "models"
        return None

    def _civic(
        self,
        evidence: _Evidence,
        vocabulary: tuple[float, str],
        scored: TextScores | None,
        trace: _Trace,
    ) -> bool:
        """Whether the complaint is about a problem a city service fixes.

        The vocabulary settles it when it names the problem, or when its complaint
        cue stands by a subject of a 311 category; otherwise the civic model does."""
        if problems := evidence.of(Kind.PROBLEM) + evidence.of(Kind.URGENT):
            trace.add(Stage.SCAN, f"civic: the vocabulary names the problem {_quote(problems[0])}")
            return True
        if vocabulary[0] >= self.profile.decision.min_complaint:
            trace.add(Stage.SCAN, "civic: the complaint cue stands by a subject of a 311 category")
            return True
        if scored is None:
            trace.add(Stage.SCAN, "not civic: nothing ties the complaint to a 311 category")
            return False
        threshold = self.profile.decision.civic_threshold or scored.civic_threshold
        civic = scored.civic >= threshold
        trace.add(
            Stage.MODELS,
            f"civic model ({scored.model}) {scored.civic:.2f} {'≥' if civic else '<'} "
            f"threshold {threshold:.2f}"
            + ("" if civic else ": a complaint, but not about a problem a city service fixes"),
        )
        return civic

    def _category(
        self, evidence: _Evidence, scored: TextScores | None, trace: _Trace
    ) -> tuple[str, float]:
        """The category, by readable rules: a problem phrase names it; else the
        categories whose subjects the text names, the category model choosing among
        them when it is confident; else a confident model; else `other`."""
        rules = self.profile.decision
        problems = self._weights(evidence, Kind.PROBLEM)
        if problems:
            key = self._heaviest(problems)
            trace.add(Stage.DECIDE, f"category {key}: named by a problem phrase of the vocabulary")
            return key, problems[key] / sum(problems.values())
        confident = (
            scored is not None
            and scored.category in self.profile.categories
            and scored.category_score >= rules.category_threshold
        )
        topics = self._weights(evidence, Kind.TOPIC)
        if topics:
            if confident and scored is not None and scored.category in topics:
                trace.add(
                    Stage.MODELS,
                    f"category {scored.category}: of the subjects named "
                    f"({', '.join(sorted(topics))}), the category model's choice "
                    f"({scored.category_score:.2f} ≥ category_threshold "
                    f"{rules.category_threshold})",
                )
                return scored.category, scored.category_score
            key = self._heaviest(topics)
            trace.add(Stage.DECIDE, f"category {key}: its subject is named in the text")
            return key, topics[key] / sum(topics.values())
        if confident and scored is not None:
            trace.add(
                Stage.MODELS,
                f"category {scored.category}: category model {scored.category_score:.2f} "
                f"≥ category_threshold {rules.category_threshold}",
            )
            return scored.category, scored.category_score
        trace.add(Stage.DECIDE, f"category {OTHER}: nothing names a category of the profile")
        return OTHER, 0.0

    def _weights(self, evidence: _Evidence, kind: Kind) -> Counter[str]:
        weights: Counter[str] = Counter()
        for hit in evidence.of(kind):
            for meaning in hit.meanings:
                if meaning.kind is kind and meaning.category:
                    weights[meaning.category] += 1
        return weights

    def _heaviest(self, weights: Counter[str]) -> str:
        order = list(self.profile.categories)
        return max(weights, key=lambda key: (weights[key], -order.index(key)))

    def _locality(self, post: Post, evidence: _Evidence) -> tuple[float, str]:
        rules = self.profile.decision
        if places := evidence.of(Kind.PLACE):
            return rules.locality_place, f"names a place in the city: {_quote(places[0])}"
        subreddit = (post.thread.subreddit or "").lower()
        if subreddit in self._subreddits:
            return rules.locality_community, f"posted in the city's community r/{subreddit}"
        if names := evidence.of(Kind.CITY):
            return rules.locality_city_name, f"names the city: {_quote(names[0])}"
        return rules.locality_none, "nothing ties it to a place in the city"

    def _addressed_account(self, post: Post) -> str | None:
        """How the post reached one of the city's accounts: a mention, a reply or a quote."""
        accounts = self._accounts.get(post.platform, set())
        marker = "@" if post.platform is Platform.X else "u/"
        for mention in post.mentions:
            if mention.lstrip("@").lower() in accounts:
                return f"mentions {marker}{mention.lstrip('@')}"
        answered = (post.thread.reply_to_author or "").lstrip("@").lower()
        if answered in accounts:
            return f"answers {marker}{answered}"
        quoted = (post.thread.quoted_author or "").lstrip("@").lower()
        if quoted in accounts:
            return f"quotes {marker}{quoted}"
        lowered = post.text.lower()
        for account in accounts:
            if f"{marker}{account}" in lowered:
                return f"mentions {marker}{account}"
        return None
