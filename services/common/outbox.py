"""The outbox relay: publishes the events a change committed and its publisher did not get out.

Every service writes its events to one table (services/common/db/repositories/outbox.py) in the
transaction of the change they report; a row waits there until the broker acknowledged it. The relay
sends the rows that are due (`relay_after` passed), oldest first, and deletes those acknowledged. Rows
are locked while they are sent (FOR UPDATE SKIP LOCKED), so two processes never send one at the same
time; a row can still go out twice (sent, then the delete failed, or its publisher's own send was
acknowledged late): readers dedupe by event id. Any process's relay may send any due row: a row holds
its topic, key and bytes as published. A row that can never be published is parked with the reason
(migration 0008), so it never holds back the others; one that large cannot be written in the first place
(domain.outbox.publishable_value), so parking is for what the broker refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from prometheus_client import Counter

from services.common.db.repositories import outbox
from services.common.domain.outbox import OutboxRecord
from services.common.kafka.failures import is_message_error
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

PARKED = Counter(
    "cvloop_outbox_parked_total",
    "Events the relay can never publish (larger than the topic takes, refused for what they hold), parked "
    "in the outbox with the reason so the others go on, by topic.",
    ["topic"],
)

PUBLISH_TIMEOUT_S = 10.0  # the relay gives the broker this long before trying again later


async def flush(pool: asyncpg.Pool, producer: EventProducer, *, limit: int = outbox.CLAIM_LIMIT) -> int:
    """Publish up to `limit` due rows, oldest first, so events left behind by an outage go out before
    newer ones; how many rows it settled (published or parked). All are handed to the producer at once
    (it keeps their order per partition and batches them). The rows acknowledged are deleted; a row
    refused for what it holds (failures.is_message_error: too large, say) is parked with the reason and
    the others go on; on an outage the rows from the first unacknowledged one wait for the next round."""
    async with pool.acquire() as conn, conn.transaction():
        records = await outbox.claim_due(conn, limit=limit)
        published, refused = await _publish(producer, records)
        for record, error in refused:
            reason = f"{type(error).__name__}: {error}"
            await outbox.park(conn, record.event_id, reason)
            PARKED.labels(record.topic).inc()
            logger.error(
                "event parked: it cannot be published",
                extra={"topic": record.topic, "event_id": str(record.event_id), "reason": reason},
            )
        await outbox.delete(conn, [record.event_id for record in published])
    for record in published:
        PUBLISHED.labels(record.topic).inc()
    return len(published) + len(refused)


async def _publish(
    producer: EventProducer, records: list[OutboxRecord]
) -> tuple[list[OutboxRecord], list[tuple[OutboxRecord, Exception]]]:
    """(acknowledged, refused for what they hold) records, in order, up to the first outage."""
    published: list[OutboxRecord] = []
    refused: list[tuple[OutboxRecord, Exception]] = []
    sent: list[tuple[OutboxRecord, asyncio.Future[Any]]] = []
    current: OutboxRecord | None = None
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            kafka = producer.producer  # read now: a test swaps it for one that is down
            for current in records:
                try:  # a record larger than the producer takes is refused here, before it is queued
                    sent.append((current, await kafka.send(current.topic, current.value, key=current.key)))
                except Exception as exc:
                    if not is_message_error(exc):
                        raise
                    refused.append((current, exc))
            for current, acknowledged in sent:
                try:
                    await acknowledged
                except Exception as exc:
                    if not is_message_error(exc):
                        raise
                    refused.append((current, exc))
                else:
                    published.append(current)
    except Exception:
        assert current is not None  # nothing fails before the first record
        PUBLISH_FAILURES.labels(current.topic).inc()
        logger.warning(
            "publish failed; the event stays in the outbox",
            exc_info=True,
            extra={
                "topic": current.topic,
                "event_id": str(current.event_id),
                "left": len(records) - len(published) - len(refused),
            },
        )
    return published, refused


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
