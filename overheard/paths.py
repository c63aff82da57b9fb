"""Where overheard finds its configuration and keeps its state."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository's `config/` folder (overheard runs from a checkout, installed editable).
CONFIG_DIR = Path(
    os.environ.get("OVERHEARD_CONFIG_DIR", Path(__file__).resolve().parents[1] / "config")
)
