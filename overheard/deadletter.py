"""Dead letters: the original bytes, unchanged, with why and where they failed.

The dead letter's value is the original message byte for byte, and the context
travels in headers (as Kafka Connect's dead-letter queues do), so a fixed
message can be re-driven by producing the same value to its source again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Stage = Literal["ingest", "classify", "sink"]

_PREFIX = "overheard."


@dataclass(frozen=True)
class DeadLetter:
    stage: Stage
    #: A sentence a person can act on.
    reason: str
    #: The error's type name, e.g. "MalformedMessage", for grouping in summaries.
    error: str
    #: Where the original came from: "topic[partition]@offset" or "file:line".
    origin: str
    original: bytes
    key: bytes | None = None
    at: datetime | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        at = (self.at or datetime.now(UTC)).isoformat()
        fields = {
            "stage": self.stage,
            "reason": self.reason,
            "error": self.error,
            "origin": self.origin,
            "at": at,
        }
        return [(_PREFIX + name, value.encode("utf-8")) for name, value in fields.items()]

    @classmethod
    def from_record(
        cls, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> DeadLetter:
        found = {
            name.removeprefix(_PREFIX): raw.decode("utf-8", "replace")
            for name, raw in headers
            if name.startswith(_PREFIX)
        }
        return cls(
            stage=found.get("stage", "ingest"),  # type: ignore[arg-type]
            reason=found.get("reason", ""),
            error=found.get("error", ""),
            origin=found.get("origin", ""),
            original=value,
            key=key,
            at=datetime.fromisoformat(found["at"]) if "at" in found else None,
        )
