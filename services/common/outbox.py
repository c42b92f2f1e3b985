"""The outbox relay: publishes the events a change committed and its publisher did not get out.

Every service writes its events to one table (services/common/db/repositories/outbox.py) in the
transaction of the change they report; a row waits there until the broker acknowledged it. The relay
sends the rows that are due (`relay_after` passed), oldest first, and deletes those acknowledged. Rows
are locked while they are sent (FOR UPDATE SKIP LOCKED), so two processes never send one at the same
time; a row can still go out twice (sent, then the delete failed, or its publisher's own send was
acknowledged late): readers dedupe by event id. Any process's relay may send any due row: a row holds
its topic, key and bytes as published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from prometheus_client import Counter

from services.common.db.repositories import outbox
from services.common.domain.outbox import OutboxRecord
from services.common.kafka.producer import EventProducer

logger = logging.getLogger(__name__)

PUBLISHED = Counter(
    "cvloop_outbox_published_total", "Events the outbox relay published and deleted, by topic.", ["topic"]
)
PUBLISH_FAILURES = Counter(
    "cvloop_outbox_publish_failures_total",
    "Relay publishes that failed; the event stays in the outbox for the next round, by topic.",
    ["topic"],
)

PUBLISH_TIMEOUT_S = 10.0  # the relay gives the broker this long before trying again later


async def flush(pool: asyncpg.Pool, producer: EventProducer, *, limit: int = outbox.CLAIM_LIMIT) -> int:
    """Publish up to `limit` due rows, oldest first, so events left behind by an outage go out before
    newer ones; how many went out. All are handed to the producer at once (it keeps their order per
    partition and batches them); the rows acknowledged before the first failure are deleted, the rest
    wait for the next round."""
    async with pool.acquire() as conn, conn.transaction():
        records = await outbox.claim_due(conn, limit=limit)
        published: list[OutboxRecord] = []
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                kafka = producer.producer  # read now: a test swaps it for one that is down
                sends = [await kafka.send(r.topic, r.value, key=r.key) for r in records]
                for record, acknowledged in zip(records, sends, strict=True):
                    await acknowledged
                    published.append(record)
        except Exception:
            failed = records[len(published)]
            PUBLISH_FAILURES.labels(failed.topic).inc()
            logger.warning(
                "publish failed; the event stays in the outbox",
                exc_info=True,
                extra={
                    "topic": failed.topic,
                    "event_id": str(failed.event_id),
                    "left": len(records) - len(published),
                },
            )
        await outbox.delete(conn, [record.event_id for record in published])
    for record in published:
        PUBLISHED.labels(record.topic).inc()
    return len(published)


class Relay:
    """One per process: a round every `interval_s`, and at once when `wake` is set (a change committed
    events it leaves to the relay)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: EventProducer,
        interval_s: float,
        wake: asyncio.Event | None = None,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.interval_s = interval_s
        self.wake = wake or asyncio.Event()

    async def run(self) -> None:
        """Publish due rows until cancelled; a failed round is logged and tried again later."""
        while True:
            try:
                while await flush(self.pool, self.producer) == outbox.CLAIM_LIMIT:  # more may be due
                    pass
            except Exception:  # a relay that stopped would strand every later event
                logger.warning("outbox relay failed; trying again later", exc_info=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self.wake.wait()
            self.wake.clear()
