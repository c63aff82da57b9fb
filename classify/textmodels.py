"""The trained text models: is a post a complaint, is it a civic problem, which category.

Three calibrated linear SVMs over one shared sparse featurizer (`textfeatures`), trained by
`overheard train` (`classify/train.py`) into a folder that holds:

- `model.joblib`: the featurizer and the heads (a scikit-learn pickle: load only
  folders you built; it is never shipped, the training data's licences forbid it);
- `metadata.json`: the version, library versions, thresholds, labels, data provenance;
- `metrics.json`: held-out and cross-validated figures per head;
- `heldout/*.csv`: the held-out rows, ready for `overheard eval`.
"""

from __future__ import annotations

import json
import logging
import platform
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import joblib
import numpy as np
import sklearn
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from overheard.classify.datasets import FILES, missing_files
from overheard.classify.encoder import SHIPPED, Encoder
from overheard.classify.textfeatures import FittedFeaturizer
from overheard.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = Path("var/models")
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"
HELDOUT_DIR = "heldout"
#: Files without which a folder is not a model.
REQUIRED = (MODEL_FILE, METADATA_FILE)
#: The layout of a trained folder; a folder of another format is trained again.
FORMAT = 2
LINEAR = "linear"
ENCODER = "MiniLM"


@dataclass(frozen=True)
class TextScores:
    complaint: float  # P(complaint)
    civic: float  # P(civic problem)
    category: str  # taxonomy key, argmax
    category_score: float  # its probability
    category_scores: Mapping[str, float]  # all classes
    #: The model that gave `complaint` and `civic`, and its thresholds for them.
    model: str = LINEAR
    complaint_threshold: float = 0.5
    civic_threshold: float = 0.5


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def runtime_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
    }


def clean_text(text: object) -> str:
    """Any input as text a featurizer takes: None is empty, lone surrogates are replaced."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return text.encode("utf-8", "replace").decode("utf-8")


def decision_matrix(svm: LinearSVC, features: Any) -> np.ndarray:
    """A linear SVM's decision values, one column per score (one for a binary head)."""
    decisions = svm.decision_function(features)
    return decisions[:, None] if decisions.ndim == 1 else decisions


class CalibratedHead:
    """A linear SVM whose decision values a small logistic regression, fitted on
    out-of-fold decisions, turns into probabilities (Platt's method; multinomial
    over the classes' decisions for the category head)."""

    def __init__(self, svm: LinearSVC, calibrator: LogisticRegression) -> None:
        self.svm = svm
        self.calibrator = calibrator
        self.classes_ = calibrator.classes_

    def predict_proba(self, features: Any) -> np.ndarray:
        """What `calibrator.predict_proba(decision_matrix(svm, features))` gives, bit for
        bit (tested), by scikit-learn's own arithmetic without its input checks: on the
        hundred-odd texts of a batch those checks cost more than the arithmetic."""
        svm, calibrator = self.svm, self.calibrator
        decisions = features @ svm.coef_.T + svm.intercept_
        scores = decisions @ calibrator.coef_.T + calibrator.intercept_
        if len(self.classes_) <= 2:
            positive = expit(scores[:, 0])
            return np.stack([1 - positive, positive], axis=1)
        # scikit-learn's softmax, in its order of operations.
        scores -= scores.max(axis=1).reshape(-1, 1)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1).reshape(-1, 1)
        return scores


class StaleModels(ModelError):
    """A trained folder an older overheard wrote: `ensure_models` trains it again."""


class TextModels:
    """The three linear heads, loaded from a trained folder, and the fine-tuned
    encoder that re-scores complaint and civic for the texts the linear civic head
    does not rule out (`civic_gate`)."""

    def __init__(
        self,
        featurizer: TfidfVectorizer,
        complaint: CalibratedHead,
        civic: CalibratedHead,
        category: CalibratedHead,
        metadata: Mapping[str, Any],
        encoder: Encoder | None = None,
    ) -> None:
        self._featurizer = FittedFeaturizer(featurizer)
        self._complaint = complaint
        self._civic = civic
        self._category = category
        self.encoder = encoder
        self.metadata = MappingProxyType(dict(metadata))
        self.linear_thresholds: dict[str, float] = {
            head: float(metadata["thresholds"][head]) for head in ("complaint", "civic")
        }
        #: The linear civic probability below which the encoder is not asked: set when
        #: training to keep `gate_recall` of the civic rows' positives.
        self.civic_gate: float = float(metadata.get("gates", {}).get("civic", 0.0))
        thresholds = encoder.thresholds if encoder is not None else self.linear_thresholds
        self.complaint_threshold: float = thresholds["complaint"]
        self.civic_threshold: float = thresholds["civic"]
        self.version: str = metadata["version"] + (f"+{encoder.version}" if encoder else "")
        self.labels: tuple[str, ...] = tuple(str(label) for label in category.classes_)

    @classmethod
    def load(cls, directory: Path, encoder: Path | None = SHIPPED) -> TextModels:
        """Load a trained folder, refusing one that is missing, incomplete, corrupt, of
        an older format or built with another Python or scikit-learn (major.minor:
        scikit-learn only promises that a pickle loads in the version that wrote it);
        with the encoder adapter in `encoder` unless it is None."""
        directory = Path(directory)
        if not directory.is_dir():
            raise ModelError(
                f"no text models at {directory}: run `overheard train` (or `make model`)"
            )
        missing = [name for name in REQUIRED if not (directory / name).is_file()]
        if missing:
            raise ModelError(
                f"text models at {directory} are incomplete (missing {', '.join(missing)}): "
                "run `overheard train` again"
            )
        try:
            metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
            built = dict(metadata["libraries"])
            version = str(metadata["version"])
            thresholds = metadata["thresholds"]
            float(thresholds["complaint"]), float(thresholds["civic"])
            folder_format = int(metadata.get("format", 1))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{directory / METADATA_FILE} is unreadable: {exc}") from exc
        if folder_format != FORMAT:
            raise StaleModels(
                f"text models at {directory} ({version}) are of format {folder_format}, this "
                f"overheard reads format {FORMAT}: run `overheard train` again"
            )
        here = runtime_versions()
        for library in ("python", "scikit-learn"):
            if _major_minor(str(built.get(library, "?"))) != _major_minor(here[library]):
                raise ModelError(
                    f"text models at {directory} ({version}) were built with {library} "
                    f"{built.get(library)}, this is {here[library]}: run `overheard train` again"
                )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", sklearn.exceptions.InconsistentVersionWarning)
                parts = joblib.load(directory / MODEL_FILE)
            models = cls(
                parts["featurizer"],
                parts["complaint"],
                parts["civic"],
                parts["category"],
                metadata,
                Encoder.load(encoder) if encoder is not None else None,
            )
        except ModelError:
            raise
        except Exception as exc:  # a corrupt pickle can raise almost anything
            raise ModelError(
                f"{directory / MODEL_FILE} cannot be loaded ({type(exc).__name__}: {exc}): "
                "run `overheard train` again"
            ) from exc
        return models

    def score(
        self, texts: Sequence[str], gate: bool = True, encode: bool = True
    ) -> list[TextScores]:
        """Scores for a batch of texts, in order. Any text is accepted.

        The encoder scores complaint and civic for the texts whose linear civic
        probability reaches `civic_gate` (every text when `gate` is false, as
        `overheard eval` measures the heads; none when `encode` is false, for the
        category alone); the others keep the linear scores."""
        if not texts:
            return []
        cleaned = [clean_text(text) for text in texts]
        features = self._featurizer.transform(cleaned)
        complaint = self._complaint.predict_proba(features)[:, 1]
        civic = self._civic.predict_proba(features)[:, 1]
        categories = self._category.predict_proba(features)
        best = categories.argmax(axis=1)
        labels = self.labels
        model = [LINEAR] * len(texts)
        if self.encoder is not None and encode:
            chosen = [i for i in range(len(texts)) if not gate or civic[i] >= self.civic_gate]
            if chosen:
                encoded = self.encoder.probabilities([cleaned[i] for i in chosen])
                complaint[chosen] = encoded[:, 0]
                civic[chosen] = encoded[:, 1]
                for i in chosen:
                    model[i] = ENCODER
        thresholds = {
            LINEAR: self.linear_thresholds,
            ENCODER: self.encoder.thresholds if self.encoder else self.linear_thresholds,
        }
        # Python floats, converted once a batch (what float() of each element gives).
        rows = categories.tolist()
        return [
            TextScores(
                complaint=complaint_i,
                civic=civic_i,
                category=labels[best_i],
                category_score=row[best_i],
                category_scores=MappingProxyType(dict(zip(labels, row, strict=True))),
                model=model_i,
                complaint_threshold=thresholds[model_i]["complaint"],
                civic_threshold=thresholds[model_i]["civic"],
            )
            for complaint_i, civic_i, best_i, row, model_i in zip(
                complaint.tolist(), civic.tolist(), best.tolist(), rows, model, strict=True
            )
        ]


class EncoderOnly:
    """The shipped encoder alone, where the linear heads cannot be trained (the labelled
    data is not at hand, as in a clone without `../shared/data`): complaint, civic and,
    with the adapter's category head, the category come from one pass of the encoder for
    every survivor of the scan, since there is no linear civic head to gate it. Without a
    category head the vocabulary names the category. It costs the encoder's milliseconds
    for each survivor, which a daemon's tens of posts a second afford."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        head = encoder.category
        self.version: str = f"encoder-only+{encoder.version}" + (
            f"+category/{head.digest}" if head else ""
        )
        self.complaint_threshold: float = encoder.thresholds["complaint"]
        self.civic_threshold: float = encoder.thresholds["civic"]

    def score(self, texts: Sequence[str]) -> list[TextScores]:
        """Scores for a batch of texts, in order (without a category head, the category
        is an empty name at probability 0)."""
        if not texts:
            return []
        encoded = self.encoder.encode([clean_text(text) for text in texts])
        labels = self.encoder.category.labels if self.encoder.category else ()
        scores = []
        for i, (complaint, civic) in enumerate(encoded.heads):
            category, category_score, by_label = "", 0.0, {}
            if encoded.category is not None:
                row = encoded.category[i]
                best = int(row.argmax())
                category, category_score = labels[best], float(row[best])
                by_label = {label: float(p) for label, p in zip(labels, row, strict=True)}
            scores.append(
                TextScores(
                    complaint=float(complaint),
                    civic=float(civic),
                    category=category,
                    category_score=category_score,
                    category_scores=MappingProxyType(by_label),
                    model=ENCODER,
                    complaint_threshold=self.complaint_threshold,
                    civic_threshold=self.civic_threshold,
                )
            )
        return scores


def ensure_models(directory: Path, data_dir: Path, encoder: Path | None = SHIPPED) -> TextModels:
    """The models in `directory`, trained there first when absent or of an older
    format and the data is present."""
    directory = Path(directory)
    if all((directory / name).is_file() for name in REQUIRED):
        try:
            return TextModels.load(directory, encoder)
        except StaleModels as exc:
            log.info("%s", exc)
    absent = missing_files(data_dir)
    if absent:
        raise ModelError(
            f"no usable text models at {directory}, and they cannot be trained: "
            f"labelled data absent ({', '.join(map(str, absent))}); expected the files "
            f"{', '.join(FILES.values())} under {data_dir / 'complaints'}"
        )
    from overheard.classify.train import train  # it imports this module

    log.info("training the text models in %s from %s", directory, data_dir)
    train(data_dir, directory)
    return TextModels.load(directory, encoder)
