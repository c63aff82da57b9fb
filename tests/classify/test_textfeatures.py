"""The feature analyser, made faster, gives exactly the features it gave before; the
fitted featurizer gives exactly the matrix scikit-learn gives."""

from __future__ import annotations

import html
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from overheard.classify.textfeatures import (
    _CUE_OF,
    MAX_CHARS,
    Analyser,
    FeatureIndex,
    FittedFeaturizer,
    featurizer,
    normalise,
)

# The analyser as it was before it was made faster: the reference the new one must equal.
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)[@＠]\w+")
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_ELONGATED = re.compile(r"(\w)\1{2,}")
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"\w+|[?!#]")


def reference_normalise(text: str) -> str:
    text = html.unescape(text[:MAX_CHARS])
    text = _URL.sub(" xurl ", text)
    text = _HANDLE.sub(" xuser ", text)
    text = _NUMBER.sub("0", text)
    text = _ELONGATED.sub(r"\1\1", text)
    return _SPACE.sub(" ", text).strip().lower()


def reference_features(text: str, ngrams: int, prefix: int, suffix: int) -> list[str]:
    normalised = reference_normalise(text)
    tokens = _TOKEN.findall(normalised.replace("'", "").replace("’", ""))
    features = list(tokens)
    features.extend(_CUE_OF[t] for t in tokens if t in _CUE_OF)
    features.append(f"~length{len(normalised).bit_length()}")
    for n in range(2, ngrams + 1):
        features.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    longer = [t for t in tokens if len(t) > prefix]
    features.extend("<" + t[:prefix] for t in longer)
    features.extend(t[-suffix:] + ">" for t in longer)
    return features


#: Pieces that reach every branch: links in any case, handles with either at sign, HTML
#: entities, apostrophes, cue words, numbers in other scripts, elongations, and the
#: whitespace only Unicode knows.
PIECES = st.sampled_from(
    [
        "http://x.co/a",
        "HTTPS://Y.org/b?c=1",
        "www.example.com",
        "WwW.Sub.net",
        "://",
        "www",
        "@handle",
        "＠全角",
        "a@b",
        "&amp;",
        "&#39;",
        "&lt;3",
        "'",
        "’",
        "don't",
        "didn’t",
        "#pothole",
        "?",
        "!",
        "not",
        "please",
        "you",
        "12.5",
        "3/4",
        "١٢٣",
        "soooooo",
        "AAAAaaa",
        "İstanbul",
        "ß",
        "potholes",
        "streetlight",
        " ",
        "\t",
        "\n",
        "\u00a0",
        "\u2003",
        "\u3000",
        "\x1c",
        "\x85",
        "\u200b",
    ]
)
TEXTS = st.one_of(st.text(), st.lists(st.one_of(PIECES, st.text(max_size=4))).map("".join))


@settings(max_examples=1500, deadline=None)
@given(TEXTS, st.integers(1, 4), st.integers(0, 6), st.integers(0, 6))
def test_the_analyser_gives_the_features_it_gave(
    text: str, ngrams: int, prefix: int, suffix: int
) -> None:
    assert normalise(text) == reference_normalise(text)
    assert Analyser(ngrams, prefix, suffix)(text) == reference_features(
        text, ngrams, prefix, suffix
    )


def test_the_analyser_on_a_post() -> None:
    text = "@CityDPW the pothole on N. Charles St is STILL there!!! 3 weeks www.x.com/a"
    assert Analyser()(text) == reference_features(text, 2, 4, 3)
    assert "~second_person" not in Analyser()(text)
    assert {"~mention", "~url", "~duration", "~exclamation", "<poth", "ole>"} <= set(
        Analyser()(text)
    )


#: What the featurizers in the tests below are fitted on, with a text of the batch.
CORPUS = [
    "@CityDPW the pothole on N. Charles St is STILL there!!! 3 weeks www.x.com/a",
    "Streetlight out at Greenmount & 33rd again, you'd think someone would notice?",
    "Love this city. Thanks to everyone who came out to clean the park #baltimore",
    "Trash piled up in the alley behind my house for days, rats everywhere. Please help",
    "didn't they fix the sidewalk on Light St? It's cracked again",
    "soooo many potholes İstanbul ß ١٢٣ &amp; don’t",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(TEXTS, min_size=1, max_size=6),
    st.integers(1, 3),
    st.integers(0, 5),
    st.integers(0, 5),
    st.integers(1, 2),
)
def test_the_fitted_featurizer_gives_scikit_learns_matrix(
    batch: list[str], ngrams: int, prefix: int, suffix: int, min_df: int
) -> None:
    fitted = featurizer(ngrams, prefix, suffix, min_df).fit(CORPUS + batch[:1])
    expected = fitted.transform(batch)
    got = FittedFeaturizer(fitted).transform(batch)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype == np.float32
    assert np.array_equal(got.indptr, expected.indptr)
    assert np.array_equal(got.indices, expected.indices)
    # Bit for bit: the scores, and so the decisions, cannot move.
    assert got.data.tobytes() == expected.data.tobytes()
    columns = FeatureIndex(fitted.analyzer, fitted.vocabulary_)
    for text in batch:
        looked_up = [fitted.vocabulary_.get(feature) for feature in fitted.analyzer(text)]
        assert sorted(columns(text)) == sorted(i + 1 for i in looked_up if i is not None)


def test_the_fitted_featurizer_takes_an_empty_batch_and_texts_without_features() -> None:
    fitted = featurizer(2, 4, 3, 1).fit(CORPUS)
    assert FittedFeaturizer(fitted).transform([]).shape == (0, len(fitted.vocabulary_))
    matrix = FittedFeaturizer(fitted).transform(["", "zzzz qqqq"])
    assert matrix.shape == (2, len(fitted.vocabulary_))
    assert matrix.toarray().tolist() == fitted.transform(["", "zzzz qqqq"]).toarray().tolist()
