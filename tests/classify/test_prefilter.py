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


def whole_text_hits(prefilter: Prefilter, text: str) -> list[tuple[str, int, int]]:
    """What the PhraseMatcher finds when it is given the whole text at once."""
    doc = prefilter.nlp(text)
    strings = prefilter.nlp.vocab.strings
    return sorted(
        (strings[m], doc[s:e].start_char, doc[s:e].end_char) for m, s, e in prefilter._matcher(doc)
    )


def stretch_hits(prefilter: Prefilter, text: str) -> list[tuple[str, int, int]]:
    (hits,) = prefilter.match([text])
    return sorted((hit.phrase, hit.start, hit.end) for hit in hits)


def test_matching_stretches_finds_what_the_whole_text_gives_on_real_posts(
    prefilter: Prefilter,
) -> None:
    from overheard.ingest import iter_archive
    from overheard.model import Post
    from overheard.paths import CONFIG_DIR

    sample = CONFIG_DIR / "samples" / "reddit-baltimore-top-2013.csv"
    texts = [item.text for item, _ in iter_archive(sample) if isinstance(item, Post)]
    survivors = [text for text in texts if prefilter.scan(text)]
    assert len(survivors) > 20
    for text in survivors:
        assert stretch_hits(prefilter, text) == whole_text_hits(prefilter, text)


words = st.sampled_from(
    [
        "pothole",
        "Pothole,",
        "on",
        "Eastern",
        "Ave",
        "still",
        "not",
        "fixed!",
        "  ",
        "\n",
        "street",
        "light",
        "is",
        "out",
        "(rats)",
        "x",
        "Fells",
        "Point",
        "gas",
        "leak",
        "again.",
    ]
)


@given(st.lists(words, max_size=30), st.sampled_from([" ", "", "  ", "\n", " \t"]))
def test_matching_stretches_equals_matching_the_whole_text(parts: list[str], glue: str) -> None:
    text = glue.join(parts)
    assert stretch_hits(_shared(), text) == whole_text_hits(_shared(), text)
