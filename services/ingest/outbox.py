"""Ingest's side of the transactional outbox (services/common/outbox.py): a `predictions` event is
written in the same statement as its predicted asset, due for the relay only after a delay that covers
ingest's own publish still in flight, and deleted in batches once Kafka acknowledged it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from uuid import UUID

import asyncpg

from schemas.events import PredictionLogged
from schemas.topics import Topic
from services.common.db.repositories import outbox
from services.common.db.repositories.base import Db, NotFound
from services.common.db.repositories.predicted_assets import INSERT_MANY, insert_columns

logger = logging.getLogger(__name__)

# The predicted assets and the events of those actually inserted, in one statement (atomic without an
# explicit transaction, and one round trip): $1-$19 the rows, $20-$23 the events, $24 their topic, $25
# the seconds before the relay may send them.
_RECORD = f"""
    WITH inserted AS ({INSERT_MANY}),
    kept AS (
        {outbox.INSERT}
        SELECT o.event_id, $24, o.key, o.value, now() + make_interval(secs => $25)
        FROM unnest($20::uuid[], $21::uuid[], $22::bytea[], $23::bytea[])
            AS o(event_id, prediction_id, key, value)
        WHERE o.prediction_id IN (SELECT prediction_id FROM inserted)
    )
    SELECT prediction_id FROM inserted"""


async def record(db: Db, rows: Sequence[tuple[UUID, PredictionLogged]], relay_after_s: float) -> set[UUID]:
    """Insert the predicted assets of (project id, event) rows with their events kept in the outbox,
    relayed after `relay_after_s` unless acknowledged first; the ids inserted (the others were recorded
    already, by prediction id or by image in their deployment)."""
    events = [event for _, event in rows]
    try:
        inserted = await db.fetch(
            _RECORD,
            *insert_columns(rows),
            [e.event_id for e in events],
            [e.prediction_id for e in events],
            [e.key for e in events],
            [e.to_bytes() for e in events],
            Topic.PREDICTIONS.value,
            relay_after_s,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(
            "a deployment or a model version of these predictions is not in the prediction's project"
        ) from exc
    return {row["prediction_id"] for row in inserted}


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
