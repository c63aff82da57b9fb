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
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

#: Longer texts are cut to this many characters before featurizing: a post's
#: opening says what it is about, and 100 KB of text must not stall a batch.
MAX_CHARS = 5000

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)[@＠]\w+")
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_ELONGATED = re.compile(r"(\w)\1{2,}")
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
