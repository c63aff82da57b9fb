import pytest
from hypothesis import given
from hypothesis import strategies as st

from overheard.classify.prefilter import Prefilter
from overheard.classify.vocabulary import Kind, Vocabulary
from overheard.profile import load_profile


@pytest.fixture(scope="module")
def prefilter() -> Prefilter:
    return Prefilter(Vocabulary.from_profile(load_profile("baltimore")))


@pytest.mark.parametrize(
    "text",
    [
        "Huge pothole on Eastern Ave again",
        "POTHOLES everywhere on Boston St",
        "the streetlight on my block, still dark",
        "Light Street Water Main Break - the morning after",
        "graffiti!",
    ],
)
def test_scan_lets_category_phrases_through(prefilter: Prefilter, text: str) -> None:
    assert prefilter.scan(text)


@pytest.mark.parametrize(
    "text",
    [
        "Orioles win the pennant!",
        "Separate the recyclables",  # "rat" inside a word is not a rat
        "Potholder sale at the market",  # "pothole" is not a prefix match
        "Fells Point at sunset",  # a place alone is not a problem
    ],
)
def test_scan_stops_posts_without_a_category_phrase(prefilter: Prefilter, text: str) -> None:
    assert not prefilter.scan(text)


def test_match_gives_token_exact_spans_and_meanings(prefilter: Prefilter) -> None:
    text = "Huge pothole on Eastern Ave in Highlandtown, still not fixed"
    (hits,) = prefilter.match([text])
    found = {hit.phrase: hit for hit in hits}
    pothole = found["pothole"]
    assert text[pothole.start : pothole.end] == "pothole"
    assert any(m.kind is Kind.PROBLEM and m.category == "pothole" for m in pothole.meanings)
    assert any(m.kind is Kind.PLACE for m in found["eastern ave"].meanings)
    assert any(m.kind is Kind.PLACE for m in found["highlandtown"].meanings)
    assert any(m.kind is Kind.CUE for m in found["still"].meanings)


@given(st.text(max_size=300))
def test_scan_and_match_never_crash(text: str) -> None:
    prefilter = _shared()
    if prefilter.scan(text):
        list(prefilter.match([text]))


_cache: list[Prefilter] = []


def _shared() -> Prefilter:
    if not _cache:
        _cache.append(Prefilter(Vocabulary.from_profile(load_profile("baltimore"))))
    return _cache[0]


@given(st.sampled_from(["pothole", "graffiti", "illegal dumping", "rats"]), st.text(max_size=40))
def test_scan_finds_a_problem_phrase_wherever_it_stands(phrase: str, filler: str) -> None:
    assert _shared().scan(f"{filler} {phrase} {filler}") or not filler.isprintable()
