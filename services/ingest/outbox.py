"""Ingest's transactional outbox (migration 0004): a `predictions` event is written in the same
transaction as its predicted asset and deleted once Kafka acknowledged it; the relay publishes what a
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
from services.common.db.repositories.base import Db
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


async def add(conn: asyncpg.Connection, events: Sequence[PredictionLogged]) -> None:
    if events:
        await conn.execute(
            """INSERT INTO ingest_outbox (event_id, prediction_id, key, value)
               SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bytea[], $4::bytea[])""",
            [e.event_id for e in events],
            [e.prediction_id for e in events],
            [e.key for e in events],
            [e.to_bytes() for e in events],
        )


async def remove(db: Db, event_ids: Sequence[UUID]) -> None:
    if event_ids:
        await db.execute("DELETE FROM ingest_outbox WHERE event_id = ANY($1::uuid[])", list(event_ids))


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
