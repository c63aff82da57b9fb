"""Checks that need JAX, run by the tests in a fresh interpreter (`run`): JAX starts
threads, and a test process that later forks (replay workers, subprocess servers) must
not hold them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from overheard.classify import finetune, minilm
from overheard.classify.encoder import Encoder

REPO = Path(__file__).resolve().parents[2]


def run(check: str) -> None:
    """Run `check` (a function of this module) in a fresh interpreter; raise with its
    output when it fails."""
    done = subprocess.run(
        [sys.executable, "-c", f"import tests.classify.jax_checks as c; c.{check}()"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def jax_runs_the_same_forward_pass() -> None:
    import jax.numpy as jnp

    base = minilm.base_weights()
    ids = minilm.Tokenizer().ids(["the alley behind my house is full of trash", "water main break"])
    for _rows, batch, mask in minilm.batches(ids, 2):
        on_jax = minilm.pooled({k: jnp.asarray(v) for k, v in base.items()}, batch, mask, jnp)
        np.testing.assert_allclose(np.asarray(on_jax), minilm.pooled(base, batch, mask), atol=1e-4)


def a_short_fine_tune_learns() -> None:
    texts = {
        "the streetlight on my block is out again": (1, 1),
        "trash has been piled in the alley for weeks": (1, 1),
        "my airline lost my bag, worst service ever": (1, 0),
        "this phone keeps crashing, so annoyed": (1, 0),
        "what a lovely sunset over the harbor": (0, 0),
        "the orioles won tonight": (0, 0),
    }
    data = finetune.Examples()
    for _ in range(6):
        for text, labels in texts.items():
            data.add(text, labels, (1.0, 1.0))
    cfg = {
        "rank": 4,
        "alpha": 8.0,
        "learning_rate": 2e-3,
        "weight_decay": 0.0,
        "dropout": 0.0,
        "epochs": 4,
        "batch": 12,
    }
    adapter = finetune.fine_tune(data, cfg, seed=13)
    assert adapter["encoder.layer.5.output.dense.lora_a"].shape == (1536, 4)
    assert adapter["encoder.layer.5.output.dense.lora_b"].shape == (4, 384)
    assert adapter["head.weight"].shape == (384, 2)
    logits = Encoder(adapter, 2.0, ((1.0, 0.0), (1.0, 0.0)), (0.5, 0.5)).logits(list(texts))
    labels = np.asarray(list(texts.values()))
    for head in range(2):
        assert logits[labels[:, head] == 1, head].min() > logits[labels[:, head] == 0, head].max()
