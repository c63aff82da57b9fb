"""The cascade's cheap passes against tokenizing every post.

Real posts (the r/baltimore sample) are mixed at several shares of irrelevant
posts; every figure of one share comes from the same run over the same texts,
so the ratios hold even on a noisy machine.
"""

from __future__ import annotations

import random
from typing import Any

import spacy
from rich.console import Console
from rich.table import Table

from overheard.classify.decide import Classifier
from overheard.ingest.archive import iter_archive
from overheard.model import Post
from overheard.paths import CONFIG_DIR
from overheard.profile import load_profile
from tests.benchmarks.timing import best_rate

SAMPLE = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"
SHARES = (0.5, 0.9, 0.95, 0.99)  # 0.95 is the r/baltimore sample's own share
CORPUS_SIZE = 20_000


def corpus(
    relevant: list[Post], irrelevant: list[Post], share: float, rng: random.Random
) -> list[Post]:
    n_irrelevant = round(CORPUS_SIZE * share)
    picked = rng.choices(irrelevant, k=n_irrelevant)
    picked += rng.choices(relevant, k=CORPUS_SIZE - n_irrelevant)
    rng.shuffle(picked)
    return picked


def measure(
    classifier: Classifier, blank: spacy.language.Language, mix: list[Post]
) -> dict[str, float]:
    """Posts/s of each way over the same posts, in one run."""
    prefilter = classifier.prefilter
    texts = [post.text for post in mix]
    return {
        "nlp_pipe": best_rate(lambda: list(blank.pipe(texts)), len(texts)),
        "scan": best_rate(lambda: [prefilter.scan(t) for t in texts], len(texts)),
        "prefilter": best_rate(
            lambda: list(prefilter.match(t for t in texts if prefilter.scan(t))), len(texts)
        ),
        "classify": best_rate(lambda: classifier.classify(mix), len(texts)),
    }


def run(console: Console) -> dict[str, Any]:
    profile = load_profile("baltimore")
    classifier = Classifier(profile)
    prefilter = classifier.prefilter
    posts = [item for item, _ in iter_archive(SAMPLE) if isinstance(item, Post)]
    relevant = [post for post in posts if prefilter.scan(post.text)]
    irrelevant = [post for post in posts if not prefilter.scan(post.text)]
    blank = spacy.blank("en")
    rng = random.Random(20261122)
    results: dict[str, Any] = {}
    table = Table(title=f"prefilter vs spacy.blank('en').pipe, {CORPUS_SIZE} real posts per share")
    for column in (
        "irrelevant share",
        "nlp.pipe posts/s",
        "scan posts/s",
        "scan+match posts/s",
        "classify posts/s",
        "scan+match ÷ nlp.pipe",
    ):
        table.add_column(column, justify="right")
    for share in SHARES:
        mix = corpus(relevant, irrelevant, share, rng)
        rates = measure(classifier, blank, mix)
        baseline, scan, cascade, classify = (
            rates[k] for k in ("nlp_pipe", "scan", "prefilter", "classify")
        )
        results[str(share)] = {
            "posts": len(mix),
            "nlp_pipe_posts_per_s": round(baseline),
            "scan_posts_per_s": round(scan),
            "prefilter_posts_per_s": round(cascade),
            "classify_posts_per_s": round(classify),
            "prefilter_vs_nlp_pipe": round(cascade / baseline, 1),
            "scan_vs_nlp_pipe": round(scan / baseline, 1),
            "classify_vs_nlp_pipe": round(classify / baseline, 1),
        }
        table.add_row(
            f"{share:.0%}",
            f"{baseline:,.0f}",
            f"{scan:,.0f}",
            f"{cascade:,.0f}",
            f"{classify:,.0f}",
            f"{cascade / baseline:.1f}×",
        )
    console.print(table)
    return {
        "source": "config/samples/reddit-baltimore-top-2013.csv",
        "relevant_posts": len(relevant),
        "irrelevant_posts": len(irrelevant),
        "by_irrelevant_share": results,
    }
