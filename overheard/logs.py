"""Logs: JSON lines by default, readable text on a terminal, secrets masked by construction.

Masking is a filter on the one handler every record goes through (overheard's
and the libraries' alike): it renders the message, the exception text and any
extra fields, then replaces every configured secret (each `SecretStr` of the
settings, also percent-encoded) and the password of any URL. Code never has to
remember to mask; a secret that reaches a log line is masked on its way out.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import quote

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

LogFormat = Literal["auto", "json", "text"]

MASK = "***"
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^\s:/@]+:)[^\s@/]+(?P<at>@)")
#: Attributes every LogRecord has; anything else was passed as `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class Masker:
    """Replaces known secrets and URL passwords in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants = {form for secret in secrets if secret for form in (secret, quote(secret, ""))}
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted(variants, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return _URL_PASSWORD.sub(rf"\g<head>{MASK}\g<at>", text)


_masker = Masker()
_installed: logging.Handler | None = None


def mask(text: str) -> str:
    """Mask text with the secrets `configure` was given (for text shown outside logs)."""
    return _masker(text)


def secrets_in(model: BaseModel) -> Iterator[str]:
    """Every secret a settings object holds: its SecretStr values and the passwords in URLs."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            yield value.get_secret_value()
        elif isinstance(value, BaseModel):
            yield from secrets_in(value)
        elif isinstance(value, str) and "://" in value:
            try:
                password = make_url(value).password
            except ArgumentError:
                continue
            if password:
                yield str(password)


class MaskingFilter(logging.Filter):
    """Renders each record and masks what it renders (see the module's docstring)."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.masker(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.masker(record.exc_text)
        if record.stack_info:
            record.stack_info = self.masker(record.stack_info)
        for key, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, key, self.masker(value))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, the extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            event["exc"] = record.exc_text
        if record.stack_info:
            event["stack"] = record.stack_info
        return json.dumps(event, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: time, level, logger, message, then the extra fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        extras = _extras(record)
        if extras:
            line += "  " + " ".join(f"{key}={value}" for key, value in extras.items())
        return line


def configure(
    level: str,
    log_format: LogFormat = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to `stream` (stderr) in the chosen format, secrets masked.

    "auto" is text when the stream is a terminal, JSON lines otherwise. Replaces the
    handler an earlier call installed, so configuring twice never logs a line twice.
    """
    global _masker, _installed
    stream = stream or sys.stderr
    _masker = Masker(secrets)
    text = log_format == "text" or (log_format == "auto" and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    handler.addFilter(MaskingFilter(_masker))
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    root.addHandler(handler)
    _installed = handler
    root.setLevel(level.upper())
    logging.getLogger("kafka").setLevel(logging.WARNING)
    return handler
