"""The first step of the cascade: cheap lexical passes over the profile's vocabulary.

Two passes, cheapest first. `scan` runs an Aho–Corasick automaton over the
lowercased text and lets a post through only when a gate phrase (a category
phrase, an urgent phrase, a civic subject, an official account) occurs on word
boundaries, or a subject's beginning starts a word: most posts stop here, for
far less than a spaCy tokenization costs. `match` tokenizes the few survivors
with spaCy and finds every vocabulary phrase with a PhraseMatcher, giving
token-exact spans.

`match` tokenizes only the stretches of a survivor where some vocabulary phrase
occurs, each widened to whitespace on both sides. spaCy splits each
whitespace-delimited chunk on its own, so a stretch tokenizes exactly as it
would inside the whole text and the matches are the same, at a fraction of the
cost: relevant posts are the long ones (the r/baltimore survivors average six
times the length of the rest), and most of their text holds no phrase at all.
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
            self._automaton.add_word(phrase, (len(phrase), False))
        for prefix in vocabulary.gate_prefixes:
            self._automaton.add_word(prefix, (len(prefix), True))
        self._automaton.make_automaton()
        self.nlp = nlp or spacy.blank("en")
        self._matcher = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        self._everything = ahocorasick.Automaton()
        for phrase in vocabulary.meanings:
            pattern = self.nlp.make_doc(phrase)
            self._matcher.add(phrase, [pattern])
            # The matcher compares tokens, so "cannot" (tokens "can", "not") also
            # matches the text "can not": the stretches must look for both forms.
            for form in {phrase, " ".join(token.lower_ for token in pattern)}:
                self._everything.add_word(form, len(form))
        self._everything.make_automaton()

    def scan(self, text: str) -> bool:
        """True when a gate phrase occurs in `text` on word boundaries (a prefix needs
        only the boundary before it)."""
        lowered = text.lower()
        if len(lowered) != len(text):
            # A few characters change length when lowercased (e.g. "İ"); offsets
            # would no longer line up, so keep the post and let `match` decide.
            return True
        for end, (length, is_prefix) in self._automaton.iter(lowered):
            start = end - length + 1
            if start > 0 and _is_word_char(lowered[start - 1]):
                continue
            if is_prefix or end + 1 == len(lowered) or not _is_word_char(lowered[end + 1]):
                return True
        return False

    def stretches(self, text: str) -> list[tuple[int, int]]:
        """[start, end) spans of `text`, cut at whitespace, that hold every vocabulary phrase."""
        lowered = text.lower()
        if len(lowered) != len(text):
            return [(0, len(text))]
        found = sorted(
            (text.rfind(" ", 0, end - length + 1) + 1, _next_space(text, end + 1))
            for end, length in self._everything.iter(lowered)
        )
        spans: list[tuple[int, int]] = []
        for start, stop in found:
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], stop))
            else:
                spans.append((start, stop))
        return spans

    def match(self, texts: Iterable[str]) -> Iterator[list[Hit]]:
        """Every vocabulary phrase in each text, as token-exact character spans.

        Only the tokenizer runs (`make_doc`), which is all the prefilter's blank
        pipeline has: a `pipe` per text cost more than tokenizing its few stretches."""
        strings = self.nlp.vocab.strings
        make_doc = self.nlp.make_doc
        for text in texts:
            hits = []
            for offset, stop in self.stretches(text):
                doc = make_doc(text[offset:stop])
                for match_id, start, end in self._matcher(doc):
                    span = doc[start:end]
                    phrase = strings[match_id]
                    hits.append(
                        Hit(
                            phrase=phrase,
                            meanings=self.vocabulary.meanings[phrase],
                            start=offset + span.start_char,
                            end=offset + span.end_char,
                            text=span.text,
                        )
                    )
            yield hits


def _next_space(text: str, start: int) -> int:
    found = text.find(" ", start)
    return len(text) if found < 0 else found
