"""Ingest's side of the transactional outbox (services/common/outbox.py): a `predictions` event is
written in the same statement as its predicted asset (predicted_assets.insert_predictions_with_events),
due for the relay only after a delay that covers ingest's own publish still in flight, and deleted in
batches once Kafka acknowledged it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from uuid import UUID

import asyncpg

from services.common.db.repositories import outbox

logger = logging.getLogger(__name__)


class Acknowledged:
    """Events Kafka acknowledged, removed from the outbox together every `interval_s` rather than one
    statement per publish; one left behind by a crash is only published again (same event id)."""

    def __init__(self, relay_after_s: float, interval_s: float = 0.2) -> None:
        self.relay_after_s = relay_after_s  # how long a recorded event waits for its own publish
        self.interval_s = interval_s
        self._event_ids: list[UUID] = []

    def add(self, event_ids: Sequence[UUID]) -> None:
        self._event_ids.extend(event_ids)

    async def run(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass
            event_ids, self._event_ids = self._event_ids, []
            try:
                await outbox.delete(pool, event_ids)
            except Exception as exc:  # Postgres away: the relay publishes them again later
                logger.error("outbox cleanup failed", extra={"error": repr(exc), "events": len(event_ids)})
