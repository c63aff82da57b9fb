"""The first step of the cascade: cheap lexical passes over the profile's vocabulary.

Two passes, cheapest first. `scan` runs an Aho–Corasick automaton over the
lowercased text and lets a post through only when a category phrase occurs on
word boundaries: most posts stop here, for far less than a spaCy tokenization
costs. `match` tokenizes the few survivors with spaCy and finds every
vocabulary phrase with a PhraseMatcher, giving token-exact spans.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import ahocorasick
import spacy
from spacy.language import Language
from spacy.matcher import PhraseMatcher

from overheard.classify.vocabulary import Meaning, Vocabulary


@dataclass(frozen=True)
class Hit:
    phrase: str
    meanings: tuple[Meaning, ...]
    #: Character offsets [start, end) in the original text.
    start: int
    end: int
    #: The phrase as written in the text.
    text: str


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


class Prefilter:
    def __init__(self, vocabulary: Vocabulary, nlp: Language | None = None) -> None:
        self.vocabulary = vocabulary
        self._automaton = ahocorasick.Automaton()
        for phrase in vocabulary.gate:
            self._automaton.add_word(phrase, phrase)
        self._automaton.make_automaton()
        self.nlp = nlp or spacy.blank("en")
        self._matcher = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        for phrase in vocabulary.meanings:
            self._matcher.add(phrase, [self.nlp.make_doc(phrase)])

    def scan(self, text: str) -> bool:
        """True when a category phrase occurs in `text` on word boundaries."""
        lowered = text.lower()
        if len(lowered) != len(text):
            # A few characters change length when lowercased (e.g. "İ"); offsets
            # would no longer line up, so keep the post and let `match` decide.
            return True
        for end, phrase in self._automaton.iter(lowered):
            start = end - len(phrase) + 1
            before_ok = start == 0 or not _is_word_char(lowered[start - 1])
            after_ok = end + 1 == len(lowered) or not _is_word_char(lowered[end + 1])
            if before_ok and after_ok:
                return True
        return False

    def match(self, texts: Iterable[str], batch_size: int = 256) -> Iterator[list[Hit]]:
        """Every vocabulary phrase in each text, as token-exact character spans."""
        strings = self.nlp.vocab.strings
        for doc in self.nlp.pipe(texts, batch_size=batch_size):
            hits = []
            for match_id, start, end in self._matcher(doc):
                span = doc[start:end]
                phrase = strings[match_id]
                hits.append(
                    Hit(
                        phrase=phrase,
                        meanings=self.vocabulary.meanings[phrase],
                        start=span.start_char,
                        end=span.end_char,
                        text=span.text,
                    )
                )
            yield hits
