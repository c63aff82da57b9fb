"""One poll of the X connector into Kafka, run as a subprocess by test_live_kafka.py.

    python tests/ingest/crash_feed.py BOOTSTRAP TOPIC_PREFIX CURSOR_DIR KILL_AT

Replays cassettes/x/search_recent_paged_from_docs.yaml (two pages). With KILL_AT = n > 0
the process sends itself SIGKILL when the n-th cursor commit begins: after Kafka
acknowledged that batch (the flush returned), before its cursor is stored.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from overheard.ingest.cursors import CursorStore, Deletion, Sent
from overheard.ingest.live import poll_once
from overheard.ingest.x_search import XSearch
from overheard.pipeline import Pipeline
from overheard.settings import BusSettings, GeoSettings, RetrySettings, Settings, XSettings
from tests.ingest.replay import cassette


class KilledBeforeCommit(CursorStore):
    def __init__(self, path: Path, kill_at: int) -> None:
        super().__init__(path)
        self._left = kill_at

    def commit(
        self,
        stream: str,
        cursor: Mapping[str, Any],
        deletions: Iterable[Deletion] = (),
        sent: Iterable[Sent] = (),
    ) -> None:
        self._left -= 1
        if self._left == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        super().commit(stream, cursor, deletions, sent)


def settings(bootstrap: str, prefix: str) -> Settings:
    return Settings(
        bus=BusSettings(
            kind="kafka", bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=1
        ),
        geo=GeoSettings(enabled=False),
        retry=RetrySettings(initial_s=0.1, max_s=1.0),
        x=XSettings(bearer_token=SecretStr("x-crash-test-token"), compliance_every_h=0),
        sinks=[],
    )


def main(bootstrap: str, prefix: str, directory: str, kill_at: int) -> None:
    pipeline = Pipeline.build(settings(bootstrap, prefix))
    pipeline.bus.ensure_topics()
    x = XSearch.from_settings(pipeline.settings.x, pipeline.profile, threading.Event())
    x.queries = x.queries[:1]
    store = KilledBeforeCommit(Path(directory) / "live.sqlite", kill_at)
    producer = pipeline.bus.producer()
    with cassette("x/search_recent_paged_from_docs.yaml", every_answer=False):
        poll_once(
            x,
            producer,
            store,
            pipeline.topics,
            pipeline.summary,
            pipeline.settings.retry,
            pipeline.stop,
        )
    producer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
