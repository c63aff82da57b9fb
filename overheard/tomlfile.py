"""Reading TOML files into pydantic models.

Errors name the file, the key and what was expected.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from overheard.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def describe_validation(source: str, exc: ValidationError) -> str:
    """One line per problem: `file: key.path: expected …, got …`."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        got = err.get("input")
        shown = "" if err["type"] == "missing" else f" (got {got!r})"
        lines.append(f"{source}: {key}: {err['msg']}{shown}")
    return "\n".join(lines)


def load_model(model: type[M], path: Path) -> M:
    data = read_toml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation(str(path), exc)) from exc
