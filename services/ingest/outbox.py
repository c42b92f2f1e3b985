"""Ingest's transactional outbox (migration 0004): a `predictions` event is written in the same
statement as its predicted asset and deleted once Kafka acknowledged it; the relay publishes what a
crash between the two steps left behind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from schemas.events import PredictionLogged
from schemas.topics import Topic
from services.common.db.repositories.base import Db, NotFound
from services.common.db.repositories.predicted_assets import INSERT_MANY, insert_columns
from services.common.kafka.producer import EventProducer

from .metrics import OUTBOX_RELAYED

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredEvent:
    """An event as the outbox keeps it: publishable as it is."""

    key: bytes
    value: bytes

    def to_bytes(self) -> bytes:
        return self.value


# The predicted assets and the events of those actually inserted, in one statement (atomic without an
# explicit transaction, and one round trip): $1-$19 the rows, $20-$23 the events.
_RECORD = f"""
    WITH inserted AS ({INSERT_MANY}),
    kept AS (
        INSERT INTO ingest_outbox (event_id, prediction_id, key, value)
        SELECT o.event_id, o.prediction_id, o.key, o.value
        FROM unnest($20::uuid[], $21::uuid[], $22::bytea[], $23::bytea[])
            AS o(event_id, prediction_id, key, value)
        WHERE o.prediction_id IN (SELECT prediction_id FROM inserted)
    )
    SELECT prediction_id FROM inserted"""


async def record(db: Db, rows: Sequence[tuple[UUID, PredictionLogged]]) -> set[UUID]:
    """Insert the predicted assets of (project id, event) rows with their events kept here; the ids
    inserted (the others were recorded already, by prediction id or by image in their deployment)."""
    events = [event for _, event in rows]
    try:
        inserted = await db.fetch(
            _RECORD,
            *insert_columns(rows),
            [e.event_id for e in events],
            [e.prediction_id for e in events],
            [e.key for e in events],
            [e.to_bytes() for e in events],
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(
            "a deployment or a model version of these predictions is not in the prediction's project"
        ) from exc
    return {row["prediction_id"] for row in inserted}


async def remove(db: Db, event_ids: Sequence[UUID]) -> None:
    if event_ids:
        await db.execute("DELETE FROM ingest_outbox WHERE event_id = ANY($1::uuid[])", list(event_ids))


class Acknowledged:
    """Events Kafka acknowledged, removed from the outbox together every `interval_s` rather than one
    statement per publish; one left behind by a crash is only published again (same event id)."""

    def __init__(self, interval_s: float = 0.2) -> None:
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
                await remove(pool, event_ids)
            except Exception as exc:  # Postgres away: the relay publishes them again later
                logger.error("outbox cleanup failed", extra={"error": repr(exc), "events": len(event_ids)})


async def relay_stale(
    pool: asyncpg.Pool, producer: EventProducer, older_than_s: float, limit: int = 500
) -> int:
    """Publish and remove up to `limit` events older than `older_than_s`; how many. Rows are locked
    (SKIP LOCKED), so two ingest replicas never relay the same row at once."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT event_id, key, value FROM ingest_outbox
               WHERE created_at < now() - make_interval(secs => $1)
               ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
            older_than_s,
            limit,
        )
        await producer.publish_many(
            Topic.PREDICTIONS, [StoredEvent(row["key"], row["value"]) for row in rows]
        )
        await remove(conn, [row["event_id"] for row in rows])
    if rows:
        OUTBOX_RELAYED.inc(len(rows))
        logger.warning("relayed unpublished predictions", extra={"count": len(rows)})
    return len(rows)


async def run_relay(
    pool: asyncpg.Pool, producer: EventProducer, older_than_s: float, stop: asyncio.Event
) -> None:
    """Relay stale events every few seconds until `stop`; an outage is logged and retried."""
    interval = min(older_than_s, 5.0)
    while not stop.is_set():
        try:
            while await relay_stale(pool, producer, older_than_s) > 0:
                pass
        except Exception as exc:  # Postgres or Kafka away: the rows stay for the next round
            logger.error("outbox relay failed; retrying", extra={"error": repr(exc)})
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
