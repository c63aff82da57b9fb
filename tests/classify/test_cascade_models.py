"""The whole cascade with the trained models, on the real labelled sets.

The floors sit a little under what the committed configuration measures (in the
comments), so they catch a regression, not noise.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from overheard.classify.datasets import civic_complaint_texts, load_acl
from overheard.classify.decide import Classifier, Outcome, Stage
from overheard.classify.textmodels import EncoderOnly, TextModels
from overheard.errors import ModelError
from overheard.model import Platform, Post, Provenance
from overheard.pipeline import text_models
from overheard.profile import load_profile
from overheard.settings import ModelsSettings
from tests.classify.conftest import DATA, Trained

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def posts(texts: list[str]) -> list[Post]:
    return [
        Post(
            id=f"x:{number}",
            platform=Platform.X,
            created_at=NOW,
            text=text,
            provenance=Provenance(connector="test", connector_version="0", collected_at=NOW),
        )
        for number, text in enumerate(texts)
        if text.strip()
    ]


@pytest.fixture(scope="module")
def linear(trained: Trained) -> TextModels:
    """The linear heads alone: the encoder costs milliseconds a post, too much for
    the tests below that run whole labelled sets (those with the encoder sample them)."""
    return TextModels.load(trained.folder, encoder=None)


@pytest.fixture(scope="module")
def classifier(linear: TextModels) -> Classifier:
    return Classifier(load_profile("baltimore"), None, linear)


@pytest.fixture(scope="module")
def encoded(trained: Trained) -> Classifier:
    return Classifier(load_profile("baltimore"), None, trained.models)


def sample(texts: list[str], size: int) -> list[str]:
    return random.Random(5).sample(texts, min(size, len(texts)))


def outcomes(classifier: Classifier, texts: list[str]) -> Counter[Outcome]:
    return Counter(decision.outcome for decision in classifier.classify(posts(texts)))


def test_most_civic_complaints_become_issues(classifier: Classifier) -> None:
    counted = outcomes(classifier, civic_complaint_texts(DATA))
    assert counted[Outcome.ISSUE] / counted.total() >= 0.55  # measured 0.59


def test_complaints_to_brands_rarely_become_issues(classifier: Classifier) -> None:
    rows = load_acl(DATA)
    complaints = outcomes(classifier, [row.text for row in rows if row.complaint])
    others = outcomes(classifier, [row.text for row in rows if not row.complaint])
    assert complaints[Outcome.ISSUE] / complaints.total() <= 0.03  # measured 0.013
    assert others[Outcome.ISSUE] / others.total() <= 0.01  # measured 0.002


@pytest.mark.parametrize("with_encoder", [False, True])
def test_the_scan_keeps_what_the_models_would_catch(
    classifier: Classifier, linear: TextModels, trained: Trained, with_encoder: bool
) -> None:
    """The prefilter must not drop civic complaints the models would have caught."""
    texts = [post.text for post in posts(civic_complaint_texts(DATA))]
    if with_encoder:
        texts = sample(texts, 600)
    models = trained.models if with_encoder else linear
    scores = models.score(texts, gate=False)
    caught = [
        text
        for text, scored in zip(texts, scores, strict=True)
        if scored.complaint >= scored.complaint_threshold and scored.civic >= scored.civic_threshold
    ]
    passed = sum(classifier.prefilter.scan(text) for text in caught)
    # measured 0.979 with the linear heads; with the encoder 0.972 on this sample (549 of
    # 565; the vocabulary's last additions were found on it) and 0.954 on all 13,645 rows it
    # catches: it calls more fragments civic ("Not taken care of"), and a third of the
    # misses name Bengaluru's agencies, which the Baltimore profile has no reason to know
    assert passed / len(caught) >= (0.94 if with_encoder else 0.97)
    everything = sum(classifier.prefilter.scan(text) for text in texts)
    assert everything / len(texts) >= 0.90  # measured 0.92: the rest are "Same", "Yy", "S"…


def test_with_the_encoder_civic_complaints_become_issues_and_brand_complaints_do_not(
    encoded: Classifier,
) -> None:
    civic = outcomes(encoded, sample(civic_complaint_texts(DATA), 400))
    brands = outcomes(encoded, sample([r.text for r in load_acl(DATA) if r.complaint], 300))
    assert civic[Outcome.ISSUE] / civic.total() >= 0.55
    assert brands[Outcome.ISSUE] / brands.total() <= 0.03


def test_a_model_decision_is_explained_with_scores_against_thresholds(
    encoded: Classifier, trained: Trained
) -> None:
    (decision,) = encoded.classify(
        posts(["The streetlight on our block has been out for weeks and nobody fixes it"])
    )
    assert decision.outcome is Outcome.ISSUE
    issue = decision.issue
    assert issue is not None
    assert issue.versions.classifier == f"cascade/3+{trained.models.version}"
    assert issue.scores.civic is not None
    assert issue.category.name == "streetlight"
    models = [step.text for step in decision.steps if step.stage is Stage.MODELS]
    assert any(
        text.startswith("complaint model (MiniLM) ") and "threshold" in text for text in models
    )


def test_a_brand_complaint_is_a_complaint_but_not_civic(encoded: Classifier) -> None:
    (decision,) = encoded.classify(
        posts(["@Ryanair lost my luggage and the road to the airport gate was a joke, worst trip"])
    )
    assert decision.outcome is Outcome.NOT_CIVIC
    assert decision.decided_at is Stage.MODELS


def test_a_survivor_naming_no_subject_is_settled_before_the_models(encoded: Classifier) -> None:
    """ "broken" and "repair" let it past the scan, but no subject of a 311 category is
    named (`require_subject`): no model could make it an issue, so none is asked."""
    (decision,) = encoded.classify(
        posts(["@AppleSupport my new phone screen is broken again and the repair is a joke"])
    )
    assert decision.outcome is Outcome.NOT_CIVIC
    assert decision.decided_at is Stage.DECIDE
    assert not [step for step in decision.steps if step.stage is Stage.MODELS]
    assert decision.reasons[-1].endswith("(require_subject): they are not asked")


def test_models_that_are_there_but_broken_stop_the_start(tmp_path: Path) -> None:
    broken = tmp_path / "models"
    broken.mkdir()
    (broken / "metadata.json").write_text("{not json")
    with pytest.raises(ModelError):
        text_models(ModelsSettings(directory=broken, train_if_missing=False))


def test_without_labelled_data_the_encoder_scores_alone_unless_required(tmp_path: Path) -> None:
    absent = ModelsSettings(directory=tmp_path / "none", data_dir=tmp_path / "no-data")
    alone = text_models(absent)
    assert isinstance(alone, EncoderOnly)
    assert alone.version.startswith("encoder-only+minilm-lora/")
    assert text_models(absent.model_copy(update={"encoder": False})) is None
    with pytest.raises(ModelError, match="cannot be trained"):
        text_models(absent.model_copy(update={"required": True}))


def test_the_encoder_alone_judges_complaints_and_the_vocabulary_names_the_category(
    tmp_path: Path,
) -> None:
    """A clone without ../shared/data cannot train the linear heads; the shipped encoder
    still tells a resident's complaint from a brand complaint."""
    models = text_models(ModelsSettings(directory=tmp_path / "none", data_dir=tmp_path / "no"))
    classifier = Classifier(load_profile("baltimore"), None, models)
    resident, brand = classifier.classify(
        posts(
            [
                "The streetlight on our block is out again and the whole street is pitch dark",
                "@Ryanair lost my luggage and the road to the airport gate was a joke, worst trip",
            ]
        )
    )
    assert resident.outcome is Outcome.ISSUE
    assert resident.issue is not None
    assert resident.issue.category.name == "streetlight"
    assert resident.issue.versions.classifier.endswith(f"+{models.version}")
    assert any("complaint model (MiniLM)" in reason for reason in resident.reasons)
    assert brand.outcome is Outcome.NOT_CIVIC
    assert brand.decided_at is Stage.MODELS
    (dumped,) = models.score(["Someone dumped old mattresses and tires behind the school"])
    assert (dumped.model, dumped.category) == ("MiniLM", "trash_dumping")
    assert dumped.category_score == max(dumped.category_scores.values())


def test_a_missing_encoder_adapter_stops_the_start(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("overheard.pipeline.SHIPPED_ENCODER", tmp_path / "no-adapter")
    settings = ModelsSettings(directory=trained.folder, train_if_missing=False, encoder=True)
    with pytest.raises(ModelError, match="encoder adapter"):
        text_models(settings)
    assert text_models(settings.model_copy(update={"encoder": False})) is not None
