"""The profile's vocabularies as one flat index of lowercase phrases and what each one means."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from overheard.profile import CityProfile


class Kind(StrEnum):
    PROBLEM = "problem"  # names a problem by itself: "pothole"
    TOPIC = "topic"  # names the subject, needs a complaint cue: "streetlight"
    CUE = "cue"  # a complaint cue: "for weeks", "when will"
    URGENT = "urgent"  # belongs to emergency services
    CITY = "city"  # a name of the city
    PLACE = "place"  # a neighbourhood, landmark or street


@dataclass(frozen=True)
class Meaning:
    kind: Kind
    #: The category key for problems and topics, else None.
    category: str | None = None


@dataclass(frozen=True)
class Vocabulary:
    #: lowercase phrase → everything it means (a phrase may be a topic of one
    #: category and a complaint cue at once).
    meanings: dict[str, tuple[Meaning, ...]]
    #: The phrases that let a post past the cheap scan: category problems and topics,
    #: urgent phrases, civic subjects and the city's official accounts.
    gate: frozenset[str]
    #: Word beginnings that let a post past the scan ("pollut" from "pollut*").
    gate_prefixes: frozenset[str] = frozenset()

    @classmethod
    def from_profile(cls, profile: CityProfile) -> Vocabulary:
        collected: dict[str, list[Meaning]] = defaultdict(list)

        def add(phrases: list[str], meaning: Meaning) -> None:
            for phrase in phrases:
                key = _normal(phrase)
                if key and meaning not in collected[key]:
                    collected[key].append(meaning)

        for key, category in profile.categories.items():
            add(category.problems, Meaning(Kind.PROBLEM, key))
            add(category.topics, Meaning(Kind.TOPIC, key))
        add(profile.vocabulary.complaint_cues, Meaning(Kind.CUE))
        add(profile.vocabulary.urgent, Meaning(Kind.URGENT))
        add(profile.city.names, Meaning(Kind.CITY))
        add(
            profile.places.neighbourhoods + profile.places.landmarks + profile.places.streets,
            Meaning(Kind.PLACE),
        )
        meanings = {phrase: tuple(found) for phrase, found in collected.items()}
        gated = {
            phrase
            for phrase, found in meanings.items()
            if any(m.kind in (Kind.PROBLEM, Kind.TOPIC, Kind.URGENT) for m in found)
        }
        gated.update(_normal(account) for account in profile.accounts.x + profile.accounts.reddit)
        prefixes = set()
        for subject in profile.vocabulary.subjects:
            if subject.endswith("*"):
                prefixes.add(_normal(subject[:-1]))
            else:
                gated.add(_normal(subject))
        return cls(
            meanings=meanings,
            gate=frozenset(gated - {""}),
            gate_prefixes=frozenset(prefixes - {""}),
        )


def _normal(phrase: str) -> str:
    return " ".join(phrase.lower().split())
