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
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from overheard.classify.datasets import FILES, Source, data_file
from overheard.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = Path("var/models")
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"
HELDOUT_DIR = "heldout"
#: Files without which a folder is not a model.
REQUIRED = (MODEL_FILE, METADATA_FILE)


@dataclass(frozen=True)
class TextScores:
    complaint: float  # P(complaint)
    civic: float  # P(civic problem)
    category: str  # taxonomy key, argmax
    category_score: float  # its probability
    category_scores: Mapping[str, float]  # all classes


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
        return self.calibrator.predict_proba(decision_matrix(self.svm, features))


class TextModels:
    """The three heads, loaded from a trained folder."""

    def __init__(
        self,
        featurizer: FeatureUnion,
        complaint: CalibratedHead,
        civic: CalibratedHead,
        category: CalibratedHead,
        metadata: Mapping[str, Any],
    ) -> None:
        self._featurizer = featurizer
        self._complaint = complaint
        self._civic = civic
        self._category = category
        self.metadata = MappingProxyType(dict(metadata))
        self.version: str = metadata["version"]
        self.complaint_threshold: float = float(metadata["thresholds"]["complaint"])
        self.civic_threshold: float = float(metadata["thresholds"]["civic"])
        self.labels: tuple[str, ...] = tuple(str(label) for label in category.classes_)

    @classmethod
    def load(cls, directory: Path) -> TextModels:
        """Load a trained folder, refusing one that is missing, incomplete, corrupt or
        built with another Python or scikit-learn (major.minor: scikit-learn only
        promises that a pickle loads in the version that wrote it)."""
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
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{directory / METADATA_FILE} is unreadable: {exc}") from exc
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
            )
        except Exception as exc:  # a corrupt pickle can raise almost anything
            raise ModelError(
                f"{directory / MODEL_FILE} cannot be loaded ({type(exc).__name__}: {exc}): "
                "run `overheard train` again"
            ) from exc
        return models

    def score(self, texts: Sequence[str]) -> list[TextScores]:
        """Scores for a batch of texts, in order. Any text is accepted."""
        if not texts:
            return []
        features = self._featurizer.transform([clean_text(text) for text in texts])
        complaint = self._complaint.predict_proba(features)[:, 1]
        civic = self._civic.predict_proba(features)[:, 1]
        categories = self._category.predict_proba(features)
        best = categories.argmax(axis=1)
        labels = self.labels
        return [
            TextScores(
                complaint=float(complaint[i]),
                civic=float(civic[i]),
                category=labels[best[i]],
                category_score=float(categories[i, best[i]]),
                category_scores=MappingProxyType(
                    {label: float(p) for label, p in zip(labels, categories[i], strict=True)}
                ),
            )
            for i in range(len(texts))
        ]


def ensure_models(directory: Path, data_dir: Path) -> TextModels:
    """The models in `directory`, trained there first when absent and the data is present."""
    directory = Path(directory)
    if not all((directory / name).is_file() for name in REQUIRED):
        absent = [
            str(data_file(data_dir, s)) for s in Source if not data_file(data_dir, s).is_file()
        ]
        if absent:
            raise ModelError(
                f"no text models at {directory}, and they cannot be trained: "
                f"labelled data absent ({', '.join(absent)}); expected the files "
                f"{', '.join(FILES.values())} under {data_dir / 'complaints'}"
            )
        from overheard.classify.train import train  # it imports this module

        log.info("no text models at %s: training them from %s", directory, data_dir)
        train(data_dir, directory)
    return TextModels.load(directory)
