"""The pipeline's parts, started and stopped together (services.common.kafka.faust_service): Postgres pool
(schema migrated), object store, event producer, the outbox relay for the events its changes commit, and
the faust app running the stream."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from services.common.kafka.faust_service import FaustService, StreamParts
from services.common.outbox import Relay

from .settings import PipelineSettings
from .stream import APP_ID, PipelineStream


class PipelineService(FaustService[PipelineSettings, PipelineStream]):
    app_id = APP_ID
    description = "the pipeline stream"

    def _attach(self, parts: StreamParts) -> tuple[PipelineStream, list[Coroutine[Any, Any, None]]]:
        relay = Relay(parts.pool, parts.producer, self.settings.pipeline_outbox_retry_s)
        stream = PipelineStream(
            parts.app,
            parts.pool,
            parts.store,
            parts.producer,
            relay.wake,
            parts.guard,
            self.settings,
        )
        return stream, [relay.run()]
