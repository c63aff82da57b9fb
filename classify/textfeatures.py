"""The features every text head shares: word n-grams, word affixes and cue kinds of
a normalised text, in one TF-IDF vectorizer.

One featurizer serves all three heads, so scoring a batch transforms it once and
each head costs a sparse dot product. Character n-grams scored a little better
in cross-validation but cost three times as much; scoring has to keep up with a
firehose.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

#: Longer texts are cut to this many characters before featurizing: a post's
#: opening says what it is about, and 100 KB of text must not stall a batch.
MAX_CHARS = 5000

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)[@＠]\w+")
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
#: A letter three times or more (written `\1\1+`, not `\1{2,}`: the same matches, faster).
_ELONGATED = re.compile(r"(\w)\1\1+")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lowercased text with URLs, @handles and numbers as placeholders and
    elongations cut to two letters ("soooo" → "soo").

    Handles and links become placeholders so the models learn that a post
    addresses someone or links somewhere, not who or where: the training sets'
    accounts (brands, Mumbai's) are not the city's.
    """
    text = html.unescape(text[:MAX_CHARS])
    # Each substitution runs only where it can match ("://" or "www." for a URL, an at
    # sign for a handle): a scan for a substring costs a fraction of a regex's.
    if "://" in text or "www." in text.lower():
        text = _URL.sub(" xurl ", text)
    if "@" in text or "＠" in text:
        text = _HANDLE.sub(" xuser ", text)
    text = _NUMBER.sub("0", text)
    text = _ELONGATED.sub(r"\1\1", text)
    # str.split() and the regex's \s know the same whitespace: this is `_SPACE`, stripped.
    return " ".join(text.split()).lower()


#: Words standing for a kind of cue: a text gets a feature for each kind it holds
#: (`~negation`), so what "never", "not" and "didn't" share is learnt once.
_CUE_WORDS = {
    "negation": "not no never nothing nobody none cannot cant dont didnt doesnt isnt wasnt "
    "wont havent hasnt couldnt wouldnt shouldnt arent werent",
    "second_person": "you your yours youre u ur",
    "first_person": "i me my mine we our us im ive",
    "duration": "still again yet already since hours days weeks months years",
    "request": "please pls plz kindly help",
    "praise": "thanks thank thx great love awesome",
}
_CUE_OF = {word: f"~{kind}" for kind, words in _CUE_WORDS.items() for word in words.split()}
_CUE_OF.update(xuser="~mention", xurl="~url")
_CUE_OF.update({"#": "~hashtag", "?": "~question", "!": "~exclamation"})


_TOKEN = re.compile(r"\w+|[?!#]")


@dataclass(frozen=True)
class Analyser:
    """A normalised text's features: its words and word n-grams up to `ngrams`, the
    first `prefix` and last `suffix` letters of longer words, the kinds of cue it
    holds (mentions, links, negation, second person, questions...) and its length
    as a power of two.

    The affixes stand in for character n-grams ("potholes", "pothole's" and
    "potholed" share `<poth`), at a fraction of their cost: scoring must keep up
    with a firehose, and scikit-learn builds n-grams in Python.
    """

    ngrams: int = 2
    prefix: int = 4
    suffix: int = 3

    def __call__(self, text: str) -> list[str]:
        normalised = normalise(text)
        tokens = _TOKEN.findall(normalised.replace("'", "").replace("’", ""))
        features = tokens.copy()
        # Loops in C where they can be (map, zip, filter): the analyser runs on every
        # survivor of the scan.
        features += filter(None, map(_CUE_OF.get, tokens))
        features.append(f"~length{len(normalised).bit_length()}")
        for n in range(2, self.ngrams + 1):
            features += map(" ".join, zip(*(tokens[start:] for start in range(n)), strict=False))
        prefix, suffix = self.prefix, self.suffix
        longer = [t for t in tokens if len(t) > prefix]
        features += ["<" + t[:prefix] for t in longer]
        features += [t[-suffix:] + ">" for t in longer]
        return features


def featurizer(ngrams: int, prefix: int, suffix: int, min_df: int) -> TfidfVectorizer:
    """Sublinear TF-IDF of the analyser's features."""
    return TfidfVectorizer(
        analyzer=Analyser(ngrams, prefix, suffix),
        min_df=min_df,
        sublinear_tf=True,
        dtype=np.float32,
    )


class FeatureIndex:
    """An analyser's features of a text as the columns a fitted vocabulary gives them,
    without writing the features out: the same columns as looking up each of
    `Analyser.__call__`'s features (tested), at a fraction of the cost.

    The analyser's feature kinds cannot be mistaken for one another (a word has no
    space, an n-gram has one, affixes carry `<` or `>`, cues `~`), so each kind gets a
    table keyed by what the analyser would have built the feature from: n-grams by the
    tuple of their words, affixes by the letters kept. Every lookup then runs in C
    (`map` over `zip` and slices), and the columns are stored plus one, so that
    `filter(None, ...)` drops the features the vocabulary lacks."""

    def __init__(self, analyser: Analyser, vocabulary: dict[str, int]) -> None:
        self.analyser = analyser
        self._words: dict[str, int] = {}
        self._lengths: dict[str, int] = {}
        self._ngrams: list[dict[tuple[str, ...], int]] = [{} for _ in range(analyser.ngrams - 1)]
        self._prefixes: dict[str, int] = {}
        self._suffixes: dict[str, int] = {}
        for feature, index in vocabulary.items():
            column = index + 1
            if " " in feature:
                words = tuple(feature.split(" "))
                self._ngrams[len(words) - 2][words] = column
            elif feature.startswith("<"):
                self._prefixes[feature[1:]] = column
            elif feature.endswith(">"):
                self._suffixes[feature[:-1]] = column
            elif feature.startswith("~length"):
                self._lengths[feature] = column
            elif not feature.startswith("~"):
                self._words[feature] = column
        self._cues = {
            word: vocabulary[cue] + 1 for word, cue in _CUE_OF.items() if cue in vocabulary
        }
        self._head = itemgetter(slice(None, analyser.prefix))
        self._tail = itemgetter(slice(-analyser.suffix, None))

    def __call__(self, text: str) -> list[int]:
        """The columns of `text`'s features in the vocabulary, each plus one, with
        repeats (in no particular order)."""
        normalised = normalise(text)
        tokens = _TOKEN.findall(normalised.replace("'", "").replace("’", ""))
        found = list(filter(None, map(self._words.get, tokens)))
        found += filter(None, map(self._cues.get, tokens))
        length = self._lengths.get(f"~length{len(normalised).bit_length()}")
        if length:
            found.append(length)
        for n, table in enumerate(self._ngrams, start=2):
            grams = zip(*(tokens[start:] for start in range(n)), strict=False)
            found += filter(None, map(table.get, grams))
        longer = [t for t in tokens if len(t) > self.analyser.prefix]
        found += filter(None, map(self._prefixes.get, map(self._head, longer)))
        found += filter(None, map(self._suffixes.get, map(self._tail, longer)))
        return found


class FittedFeaturizer:
    """A fitted featurizer's `transform` without scikit-learn's per-call costs: the same
    matrix, bit for bit (tested against `TfidfVectorizer.transform`).

    Scoring runs on batches of a hundred-odd survivors of the scan, where scikit-learn's
    input checks and its feature-by-feature counting loop cost more than the features
    themselves. Here each text's features are looked up in one pass in C (`map`), the
    batch is counted by one `np.unique`, and the sublinear TF-IDF and the L2 norm are
    scikit-learn's own operations in its order."""

    def __init__(self, fitted: TfidfVectorizer) -> None:
        if not (fitted.sublinear_tf and fitted.use_idf and fitted.norm == "l2"):
            raise ValueError("only a sublinear, IDF-weighted, L2-normed featurizer is supported")
        if not isinstance(fitted.analyzer, Analyser):
            raise ValueError(f"not the overheard analyser: {fitted.analyzer!r}")
        self.fitted = fitted
        self._width = len(fitted.vocabulary_)
        self._columns = FeatureIndex(fitted.analyzer, fitted.vocabulary_)
        self._idf: np.ndarray = fitted.idf_
        self._dtype = fitted.dtype

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        width = self._width
        columns: list[int] = []
        sizes: list[int] = []
        for text in texts:
            columns_of_text = self._columns(text)
            columns += columns_of_text
            sizes.append(len(columns_of_text))
        # Each feature as row × width + column, counted: the sorted (row, column) pairs
        # with their counts are the CSR of the counts, indices sorted within rows, as
        # `CountVectorizer` leaves them.
        rows = np.repeat(np.arange(len(texts), dtype=np.int64) * width, sizes)
        keys = rows + np.array(columns, dtype=np.int64) - 1
        pairs, counts = np.unique(keys, return_counts=True)
        row_of = pairs // width
        indptr = np.zeros(len(texts) + 1, dtype=np.int32)
        np.cumsum(np.bincount(row_of, minlength=len(texts)), out=indptr[1:])
        data = counts.astype(self._dtype)
        column_of = (pairs - row_of * width).astype(np.int32)
        matrix = sp.csr_matrix((data, column_of, indptr), shape=(len(texts), width))
        np.log(matrix.data, matrix.data)
        matrix.data += 1.0
        matrix.data *= self._idf[matrix.indices]
        inplace_csr_row_normalize_l2(matrix)
        return matrix
