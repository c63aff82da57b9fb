"""The MiniLM encoder as array code: tokens, batches, and one forward pass for numpy
and JAX alike."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from overheard.classify import minilm
from tests.classify import jax_checks


@pytest.fixture(scope="module")
def base() -> minilm.Weights:
    return minilm.base_weights()


@pytest.fixture(scope="module")
def tokenizer() -> minilm.Tokenizer:
    return minilm.Tokenizer()


def embed(base: minilm.Weights, tokenizer: minilm.Tokenizer, texts: list[str]) -> np.ndarray:
    ids = tokenizer.ids(texts)
    out = np.zeros((len(texts), minilm.HIDDEN))
    for rows, batch, mask in minilm.batches(ids, 8):
        out[rows] = minilm.pooled(base, batch, mask)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_links_and_handles_become_placeholders() -> None:
    assert minilm.prepare("@BaltimoreDPW see https://t.co/x &amp; fix") == "@user see http & fix"


def test_tokens_are_cut_and_not_padded(tokenizer: minilm.Tokenizer) -> None:
    short, long = tokenizer.ids(["pothole", "pothole " * 500])
    assert short[0] == 101 and short[-1] == 102  # [CLS] ... [SEP], no padding
    assert len(long) == minilm.MAX_TOKENS


def test_batches_group_by_length_and_mask_the_padding() -> None:
    ids = [[101, 5, 102], [101] + [7] * 20 + [102], [101, 9, 9, 102]]
    seen = []
    for rows, batch, mask in minilm.batches(ids, 2):
        assert batch.shape[1] % 8 == 0
        for j, i in enumerate(rows):
            assert mask[j].sum() == len(ids[i])
            assert list(batch[j, : len(ids[i])]) == ids[i]
            assert not batch[j, len(ids[i]) :].any()
        seen.extend(rows)
    assert seen == [0, 2, 1]  # shortest first: a batch pads little


def test_a_post_embeds_the_same_alone_and_beside_a_longer_one(
    base: minilm.Weights, tokenizer: minilm.Tokenizer
) -> None:
    alone = embed(base, tokenizer, ["the streetlight is out"])
    padded = embed(base, tokenizer, ["the streetlight is out", "a much longer post " * 10])
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)


def test_the_base_model_puts_paraphrases_together(
    base: minilm.Weights, tokenizer: minilm.Tokenizer
) -> None:
    pothole, hole, phone = embed(
        base,
        tokenizer,
        [
            "There is a huge pothole on Eastern Avenue",
            "A big hole in the road on Eastern Ave",
            "Loving my new phone, thanks for the upgrade",
        ],
    )
    assert pothole @ hole > 0.6
    assert pothole @ hole > pothole @ phone + 0.4


def test_jax_runs_the_same_forward_pass() -> None:
    if importlib.util.find_spec("jax") is None:  # not imported here: see jax_checks
        pytest.skip("JAX is in the train and dev extras")
    jax_checks.run("jax_runs_the_same_forward_pass")


def test_an_adapter_adds_its_low_rank_update(base: minilm.Weights) -> None:
    rng = np.random.default_rng(0)
    adapter = {}
    for layer in range(minilm.LAYERS):
        for name in minilm.DENSE:
            key = f"encoder.layer.{layer}.{name}"
            fan_in, fan_out = base[key + ".weight"].shape
            adapter[key + ".lora_a"] = rng.normal(size=(fan_in, 2)).astype(np.float32)
            adapter[key + ".lora_b"] = np.zeros((2, fan_out), np.float32)
    key = "encoder.layer.3.intermediate.dense"
    adapter[key + ".lora_b"][0, 0] = 1.0
    merged = minilm.adapted(base, adapter, 0.5)
    change = merged[key + ".weight"] - base[key + ".weight"]
    np.testing.assert_allclose(change[:, 0], adapter[key + ".lora_a"][:, 0] * 0.5, atol=1e-6)
    assert not change[:, 1:].any()
    np.testing.assert_array_equal(
        merged["encoder.layer.0.output.dense.weight"], base["encoder.layer.0.output.dense.weight"]
    )
