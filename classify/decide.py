"""The decision: is this post a local complaint the city should hear, and why.

This first classifier decides from the profile's vocabulary alone (`decided_by`
says so on every issue); the trained models take over the analysis step later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from overheard.classify.prefilter import Hit, Prefilter
from overheard.classify.vocabulary import Kind, Vocabulary
from overheard.geo.locate import Locator
from overheard.model import Category, Issue, Platform, Post, Precision, Scores, Versions
from overheard.profile import CityProfile

CLASSIFIER_VERSION = "prefilter-vocabulary/1"
DECIDED_BY = "prefilter:vocabulary"


class Outcome(StrEnum):
    STOPPED_BY_SCAN = "stopped_by_scan"  # no category phrase at all: the cheap pass stopped it
    NO_COMPLAINT = "no_complaint"  # a category subject, but nothing says it is a problem
    ADDRESSED_CITY = "addressed_city"  # a complaint the city was already told about
    OUTSIDE_CITY = "outside_city"  # a complaint about a place outside the city
    ISSUE = "issue"


@dataclass(frozen=True)
class Decision:
    post: Post
    outcome: Outcome
    reasons: tuple[str, ...]
    issue: Issue | None = None


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


def _quote(hit: Hit) -> str:
    return f"'{hit.text}' (chars {hit.start}-{hit.end})"


class Classifier:
    """Decides, for a batch of posts, which are local complaints."""

    def __init__(self, profile: CityProfile, locator: Locator | None = None) -> None:
        """`locator` places complaints with the city's gazetteer; without one, issues
        carry no location."""
        self.profile = profile
        self.locator = locator
        self.prefilter = Prefilter(Vocabulary.from_profile(profile))
        self._accounts = {
            Platform.X: {a.lower() for a in profile.accounts.x},
            Platform.REDDIT: {a.lower() for a in profile.accounts.reddit},
        }
        self._subreddits = {s.lower() for s in profile.community.subreddits}
        self._versions = Versions(classifier=CLASSIFIER_VERSION, profile=profile.city.version)

    def classify(self, posts: Sequence[Post]) -> list[Decision]:
        survivors = [post for post in posts if self.prefilter.scan(post.text)]
        matched = dict(
            zip(
                (post.id for post in survivors),
                self.prefilter.match(post.text for post in survivors),
                strict=True,
            )
        )
        decisions = []
        for post in posts:
            hits = matched.get(post.id)
            if hits is None:
                reason = "no category phrase of the profile's vocabulary: stopped by the scan"
                decisions.append(Decision(post, Outcome.STOPPED_BY_SCAN, (reason,)))
            else:
                decisions.append(self._decide(post, _Evidence(hits)))
        return decisions

    def _addressed_account(self, post: Post) -> str | None:
        accounts = self._accounts.get(post.platform, set())
        for mention in post.mentions:
            if mention.lstrip("@").lower() in accounts:
                return mention.lstrip("@")
        marker = "@" if post.platform is Platform.X else "u/"
        lowered = post.text.lower()
        for account in accounts:
            if f"{marker}{account}" in lowered:
                return account
        return None

    def _category(self, evidence: _Evidence) -> tuple[str, float, list[Hit]] | None:
        """The category with the most weight (a problem phrase counts twice a topic)."""
        weights: Counter[str] = Counter()
        support: dict[str, list[Hit]] = {}
        for kind, weight in ((Kind.PROBLEM, 2), (Kind.TOPIC, 1)):
            for hit in evidence.of(kind):
                for meaning in hit.meanings:
                    if meaning.kind is kind and meaning.category:
                        weights[meaning.category] += weight
                        support.setdefault(meaning.category, []).append(hit)
        if not weights:
            return None
        order = list(self.profile.categories)
        best = max(weights, key=lambda key: (weights[key], -order.index(key)))
        return best, weights[best] / sum(weights.values()), support[best]

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

    def _decide(self, post: Post, evidence: _Evidence) -> Decision:
        rules = self.profile.decision
        found = self._category(evidence)
        if found is None:
            reason = "only a partial phrase matched after tokenizing: no category"
            return Decision(post, Outcome.STOPPED_BY_SCAN, (reason,))
        category_key, category_score, support = found
        vocab = self.profile.categories[category_key]
        reasons = [
            f"category {category_key} ({vocab.label}) from "
            + ", ".join(_quote(hit) for hit in support)
        ]
        problems = [h for h in evidence.of(Kind.PROBLEM) if h in support]
        window = rules.cue_window
        cues = [
            cue
            for cue in evidence.of(Kind.CUE)
            if any(
                cue.start - window <= hit.end and hit.start - window <= cue.end for hit in support
            )
        ]
        if problems:
            complaint = rules.problem_score
            reasons.append(f"complaint: {_quote(problems[0])} names a problem by itself")
        elif cues:
            complaint = rules.cue_score
            reasons.append(f"complaint: the subject meets the complaint cue {_quote(cues[0])}")
        else:
            complaint = 0.0
            reasons.append(
                "no complaint: the subject is named but no complaint cue stands within "
                f"{window} characters of it"
            )
        if complaint < rules.min_complaint:
            reasons.append(f"complaint score {complaint:.2f} < min_complaint {rules.min_complaint}")
            return Decision(post, Outcome.NO_COMPLAINT, tuple(reasons))

        locality, locality_reason = self._locality(post, evidence)
        location = None
        if self.locator is not None:
            located = self.locator.locate(post.text)
            reasons.extend(f"location: {reason}" for reason in located.reasons)
            if not located.local:
                return Decision(post, Outcome.OUTSIDE_CITY, tuple(reasons))
            if located.location is not None and located.location.precision is not Precision.CITY:
                location = located.location
                if locality < rules.locality_place:
                    locality = rules.locality_place
                    locality_reason = f"located at {location.precision} precision"
        reasons.append(f"locality {locality:.2f}: {locality_reason}")
        urgent = evidence.of(Kind.URGENT)
        if urgent:
            reasons.append(f"urgent: {_quote(urgent[0])} belongs to emergency services")
        addressed = self._addressed_account(post)
        issue = Issue(
            id=Issue.id_for(self.profile.name, post.id),
            city=self.profile.name,
            post=post,
            category=Category(name=category_key, service_code=vocab.service_code),
            scores=Scores(complaint=complaint, category=category_score, locality=locality),
            location=location,
            addresses_city=addressed is not None,
            names_city=bool(evidence.of(Kind.CITY)),
            urgent=bool(urgent),
            decided_by=DECIDED_BY,
            explanation=tuple(reasons),
            versions=self._versions,
        )
        if addressed is not None:
            if not rules.keep_addressed:
                reasons.append(f"addresses the city (@{addressed}): the city already heard it")
                return Decision(post, Outcome.ADDRESSED_CITY, tuple(reasons), issue=None)
            reasons.append(f"addresses the city (@{addressed}): kept, flagged (keep_addressed)")
            issue = issue.model_copy(update={"explanation": tuple(reasons)})
        return Decision(post, Outcome.ISSUE, tuple(reasons), issue=issue)
