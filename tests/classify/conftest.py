"""The text models, trained once per test session on the real shared data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from overheard.classify.datasets import FILES, Source
from overheard.classify.textmodels import TextModels, ensure_models

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
COMPLAINTS = [DATA / "complaints" / FILES[source] for source in Source]


def need_complaints() -> None:
    missing = [str(path) for path in COMPLAINTS if not path.is_file()]
    if missing:
        pytest.skip(f"shared data absent: {', '.join(missing)}")


@dataclass(frozen=True)
class Trained:
    models: TextModels
    folder: Path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Trained through `ensure_models`, which trains when the folder is empty."""
    need_complaints()
    folder = tmp_path_factory.mktemp("text-models") / "models"
    return Trained(ensure_models(folder, DATA), folder)
