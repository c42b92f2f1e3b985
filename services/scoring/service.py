"""The scoring service's parts, started and stopped together (services.common.kafka.faust_service):
Postgres pool (schema migrated), object store, event producer, and the faust app running the stream."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from services.common.kafka.faust_service import FaustService, StreamParts
from services.common.kafka.producer import EventProducer

from .settings import ScoringSettings
from .stream import APP_ID, ScoringStream


class ScoringService(FaustService[ScoringSettings, ScoringStream]):
    app_id = APP_ID
    description = "the scoring stream"

    def _producer(self) -> EventProducer:
        # Scores go out a batch at a time: large producer batches carry a whole take() of them.
        return EventProducer.from_settings(self.settings, max_batch_size=1 << 20, linger_ms=10)

    def _attach(self, parts: StreamParts) -> tuple[ScoringStream, list[Coroutine[Any, Any, None]]]:
        stream = ScoringStream(parts.app, self.settings, parts.pool, parts.store, parts.producer, parts.guard)
        return stream, []
