"""The labelled sets, their repair and their fixed held-out splits."""

from __future__ import annotations

import tomllib

import pytest

from overheard.classify import datasets
from overheard.classify.datasets import Source
from overheard.classify.train import category_data, civic_data, complaint_data, load_config
from tests.classify.conftest import DATA, need_complaints

TAXONOMY = set(
    tomllib.loads((datasets.REPO / "config" / "cities" / "baltimore.toml").read_text())[
        "categories"
    ]
)


def test_the_hash_rule_holds_out_a_fifth_and_is_deterministic() -> None:
    texts = [f"post number {i}" for i in range(20_000)]
    share = sum(datasets.is_heldout(text) for text in texts) / len(texts)
    assert share == pytest.approx(0.2, abs=0.01)
    assert [datasets.is_heldout(t) for t in texts[:50]] == [
        datasets.is_heldout(t) for t in texts[:50]
    ]
    assert datasets.is_heldout("lone \ud800 surrogate") in {True, False}


def test_repair_undoes_mojibake() -> None:
    broken = "what\u00c3\u00a2\u00e2\u0082\u00ac\u00e2\u0084\u00a2s up \u00c3\u00b0\u00c5\u00b8"
    assert datasets.repair(broken).startswith("what's up")
    assert datasets.repair("  plain text \n") == "plain text"


def test_label_map_keeps_seven_classes_apart_in_the_taxonomy() -> None:
    label_map = datasets.load_label_map()
    assert len(label_map) == 10
    assert set(label_map.values()) <= TAXONOMY
    assert len(set(label_map.values())) >= 7


@pytest.mark.parametrize("source", list(Source))
def test_committed_splits_are_what_the_hash_rule_chooses(source: Source) -> None:
    need_complaints()
    rows = datasets.LOADERS[source](DATA)
    assert datasets.heldout_keys(source) == frozenset(datasets.chosen_keys(rows))


@pytest.mark.parametrize("source", list(Source))
def test_heldout_rows_are_about_a_fifth_and_never_straddle(source: Source) -> None:
    need_complaints()
    split = datasets.load_split(DATA, source)
    total = len(split.train) + len(split.heldout)
    assert 0.17 < len(split.heldout) / total < 0.23
    assert not {row.key for row in split.train} & {row.key for row in split.heldout}
    assert not {row.text for row in split.train} & {row.text for row in split.heldout}


def test_mumbai_text_is_repaired() -> None:
    need_complaints()
    rows = datasets.load_mumbai(DATA)
    assert sum("\u00c3" in row.text for row in rows) / len(rows) < 0.01


def test_no_head_trains_on_a_heldout_text() -> None:
    need_complaints()
    config = load_config()
    splits = {source: datasets.load_split(DATA, source) for source in Source}
    heldout = {row.text for split in splits.values() for row in split.heldout}
    acl, mumbai, bengaluru = (splits[s].train for s in Source)
    heads = [
        complaint_data(acl, mumbai, config["complaint"]),
        civic_data(mumbai, bengaluru, acl, config["civic"]),
        category_data(bengaluru, datasets.load_label_map()),
    ]
    for head in heads:
        assert head.texts
        assert not set(head.texts) & heldout


def test_civic_complaint_texts_are_the_mumbai_complaints_and_bengaluru_civic_rows() -> None:
    need_complaints()
    texts = datasets.civic_complaint_texts(DATA)
    mumbai = [row for row in datasets.load_mumbai(DATA) if row.complaint == 1]
    bengaluru = [row for row in datasets.load_bengaluru(DATA) if row.civic == 1]
    assert len(texts) == len(mumbai) + len(bengaluru)
    assert texts[0] == mumbai[0].text
    assert all(isinstance(text, str) for text in texts)
