from collections.abc import Sequence

import pytest

from overheard.classify.decide import Classifier, Outcome, Stage
from overheard.classify.textmodels import TextScores
from overheard.model import Issue, Platform
from overheard.profile import load_profile
from tests.factories import post


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_profile("baltimore"))


def decide(classifier: Classifier, *args, **kwargs):
    (decision,) = classifier.classify([post(*args, **kwargs)])
    return decision


def test_a_problem_phrase_makes_an_issue_with_its_service_code(classifier: Classifier) -> None:
    decision = decide(classifier, "Light Street Water Main Break - the morning after")
    assert decision.outcome is Outcome.ISSUE
    issue = decision.issue
    assert issue is not None
    assert issue.id == Issue.id_for("baltimore", "reddit:t3_wp55z")
    assert issue.category.name == "water_sewer"
    assert issue.category.service_code == "WW-Water Leak (Exterior)"
    assert issue.decided_by == "vocabulary"
    assert issue.versions.classifier == "cascade/3+vocabulary-only"
    assert issue.scores.civic is None
    assert issue.scores.complaint == pytest.approx(0.9)
    assert issue.scores.locality == pytest.approx(0.9)  # "Light Street" is a street
    assert not issue.addresses_city
    assert any("Water Main Break" in reason for reason in issue.explanation)


def test_a_topic_needs_a_nearby_complaint_cue(classifier: Classifier) -> None:
    plain = decide(classifier, "What are these things hanging on street light poles?")
    assert plain.outcome is Outcome.NO_COMPLAINT
    complaint = decide(classifier, "The street light on Fleet St has been out for weeks")
    assert complaint.outcome is Outcome.ISSUE
    assert complaint.issue.category.name == "streetlight"
    assert complaint.issue.scores.locality == pytest.approx(0.9)  # names a street
    far = "The street light on my corner. " + "x" * 200 + " Ugh, the Orioles lost again."
    assert decide(classifier, far).outcome is Outcome.NO_COMPLAINT


def test_posts_addressing_the_city_are_excluded_by_default(classifier: Classifier) -> None:
    decision = decide(
        classifier,
        "@Baltimore311 pothole on Eastern Ave at Linwood",
        "1849",
        platform=Platform.X,
        mentions=("Baltimore311",),
    )
    assert decision.outcome is Outcome.ADDRESSED_CITY
    assert decision.issue is None
    assert "addresses the city (mentions @Baltimore311)" in decision.reasons[-1]
    assert decision.decided_at is Stage.DECIDE


def test_a_reply_to_a_city_account_addresses_the_city(classifier: Classifier) -> None:
    decision = decide(
        classifier,
        "still a pothole on Eastern Ave, three weeks on",
        "1850",
        platform=Platform.X,
        reply_to_author="BmoreCityDOT",
    )
    assert decision.outcome is Outcome.ADDRESSED_CITY
    assert "answers @bmorecitydot" in decision.reasons[-1]


def test_quoting_a_city_account_addresses_the_city(classifier: Classifier) -> None:
    decision = decide(
        classifier,
        "they said fixed, the pothole is still there",
        "1851",
        platform=Platform.X,
        quoted_author="Baltimore311",
    )
    assert decision.outcome is Outcome.ADDRESSED_CITY


def test_a_profile_switch_keeps_addressed_posts_flagged() -> None:
    profile = load_profile("baltimore")
    keeping = profile.model_copy(
        update={"decision": profile.decision.model_copy(update={"keep_addressed": True})}
    )
    decision = decide(
        Classifier(keeping), "@BaltimoreDPW rats everywhere in our alley", "77", platform=Platform.X
    )
    assert decision.outcome is Outcome.ISSUE
    assert decision.issue.addresses_city


def test_urgent_and_city_name_are_flagged(classifier: Classifier) -> None:
    decision = decide(
        classifier, "Gas leak and a fallen tree on Harford Rd in Baltimore", subreddit=None
    )
    assert decision.outcome is Outcome.ISSUE
    assert decision.issue.urgent
    assert not decision.issue.to_311  # emergency services, not 311, unless the profile says
    assert any("not filed to 311" in reason for reason in decision.reasons)
    assert decision.issue.names_city
    assert decision.issue.category.name == "tree"


def test_unrelated_posts_stop_at_the_scan(classifier: Classifier) -> None:
    decision = decide(classifier, "The Orioles clinched the division!")
    assert decision.outcome is Outcome.STOPPED_BY_SCAN
    assert decision.issue is None


def test_the_same_post_always_gives_the_same_issue(classifier: Classifier) -> None:
    first = decide(classifier, "illegal dumping in the alley behind Conkling St again")
    second = decide(classifier, "illegal dumping in the alley behind Conkling St again")
    assert first.issue == second.issue


@pytest.mark.parametrize(
    ("text", "language", "reason"),
    [
        ("https://t.co/abc @Baltimore311 #potholes", "en", "no words to judge"),
        ("Hay un bache enorme en la calle Eastern", "es", "written in 'es'"),
    ],
)
def test_posts_it_cannot_judge_get_a_defined_outcome(
    classifier: Classifier, text: str, language: str | None, reason: str
) -> None:
    decision = decide(classifier, text, language=language)
    assert decision.outcome is Outcome.NOT_JUDGED
    assert decision.decided_at is Stage.INPUT
    assert reason in decision.reasons[0]


def test_a_post_of_only_emoji_stops_at_the_scan(classifier: Classifier) -> None:
    decision = decide(classifier, "🚧🚧🚧 😡")
    assert decision.outcome is Outcome.STOPPED_BY_SCAN
    assert decision.issue is None


def test_an_undetermined_language_tag_is_still_judged(classifier: Classifier) -> None:
    decision = decide(classifier, "pothole on Eastern Ave again", language="und")
    assert decision.outcome is Outcome.ISSUE


def test_a_huge_post_is_judged_on_its_beginning(classifier: Classifier) -> None:
    text = "Pothole on Eastern Ave again. " + "blah " * 20_000
    decision = decide(classifier, text)
    assert decision.outcome is Outcome.ISSUE
    assert "the first 5,000 are judged" in decision.reasons[0]


def test_a_batch_gets_one_decision_per_post_in_order_whatever_ended_each(
    classifier: Classifier,
) -> None:
    posts = [
        post("Hay un bache enorme en la calle Eastern", "t3_b1", language="es"),
        post("Orioles win!", "t3_b2"),
        post("pothole on Eastern Ave again", "t3_b3", language="en-GB"),
        post("Orioles win again", "t3_b4", language="EN"),
        post("https://t.co/abc @Baltimore311 #potholes", "t3_b5", language="en"),
        post("pothole on Eastern Ave again", "t3_b6"),
    ]
    decisions = classifier.classify(posts)
    assert [d.post for d in decisions] == posts
    assert [d.outcome for d in decisions] == [
        Outcome.NOT_JUDGED,
        Outcome.STOPPED_BY_SCAN,
        Outcome.ISSUE,
        Outcome.STOPPED_BY_SCAN,
        Outcome.NOT_JUDGED,
        Outcome.ISSUE,
    ]
    stopped = [(step.stage, step.text) for step in decisions[1].steps]
    assert stopped == [(Stage.SCAN, "nothing of the profile's civic vocabulary: stopped")]
    assert decisions[3].steps == decisions[1].steps and decisions[3].decided_at is Stage.SCAN
    alone = decide(classifier, "pothole on Eastern Ave again", "t3_b3", language="en-GB")
    assert decisions[2].issue == alone.issue


class _Recording:
    """A scorer that records what it is asked and never makes anything civic."""

    version = "recording"
    complaint_threshold = civic_threshold = 0.5

    def __init__(self) -> None:
        self.asked: list[str] = []

    def score(self, texts: Sequence[str]) -> list[TextScores]:
        self.asked += texts
        return [TextScores(0.0, 0.0, "other", 0.0, {}) for _ in texts]


def test_survivors_naming_no_subject_are_not_scored_when_the_profile_requires_one() -> None:
    profile = load_profile("baltimore")
    texts = ["the dpw truck woke us up again, terrible", "pothole on Eastern Ave again"]
    scorer = _Recording()
    no_subject, subject = Classifier(profile, None, scorer).classify(
        [post(text, f"t3_s{n}") for n, text in enumerate(texts)]
    )
    assert scorer.asked == [texts[1]]
    assert (no_subject.outcome, no_subject.decided_at) == (Outcome.NOT_CIVIC, Stage.DECIDE)
    assert no_subject.reasons == (
        "vocabulary found: 'again', 'terrible'",
        "not civic here: the text names no subject of the profile's 311 categories, and the "
        "models alone do not make an issue (require_subject): they are not asked",
    )
    assert subject.outcome is Outcome.ISSUE
    free = profile.model_copy(
        update={"decision": profile.decision.model_copy(update={"require_subject": False})}
    )
    scorer = _Recording()
    Classifier(free, None, scorer).classify([post(texts[0], "t3_s0")])
    assert scorer.asked == [texts[0]]
