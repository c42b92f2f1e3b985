"""Changes and the events that report them, committed together (the transactional outbox).

A handler makes its change inside `change(ctx)` and names the events it causes; they are written to the
outbox table in the same transaction. After the commit the request answers at once and wakes the relay,
one task per process, which publishes pending rows oldest first and deletes those the broker
acknowledged. When the broker is down the change still stands and the request still succeeds: its
events wait in the outbox until the relay gets them out. So no committed change loses its event, and a
client never needs to retry a request that already took effect. A row can go out twice (sent, then the
delete failed): readers dedupe by event id. Rows are locked while they are sent, so replicas never send
one twice at the same time; with several replicas, concurrent changes of one deployment may be published
in either order, and DeploymentUpdated carries occurred_at (taken while the deployment's row is locked)
for readers to keep the newest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from prometheus_client import Counter

from schemas.envelope import Event
from services.common.db.repositories import outbox

from .context import Context

logger = logging.getLogger(__name__)

PUBLISHED = Counter("cvloop_api_events_published_total", "Events the api published, by topic.", ["topic"])
PUBLISH_FAILURES = Counter(
    "cvloop_api_event_publish_failures_total",
    "Publishes that failed and were left in the outbox for the relay, by topic.",
    ["topic"],
)


class Change:
    """One transaction's connection, and the events to publish once it commits."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.events: list[tuple[str, Event]] = []

    def publish(self, topic: str, event: Event) -> None:
        self.events.append((topic, event))


PUBLISH_TIMEOUT_S = 10.0  # the relay gives the broker this long before trying again later


@asynccontextmanager
async def change(ctx: Context) -> AsyncIterator[Change]:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            current = Change(conn)
            yield current
            await outbox.enqueue(conn, current.events)
    if current.events:
        ctx.outbox_wake.set()


async def flush(ctx: Context) -> int:
    """Publish every pending outbox row, oldest first, so events left behind by an outage go out before
    newer ones. Rows are locked while they are sent: a concurrent flush skips them instead of sending
    them twice. All are handed to the producer at once (it keeps their order per partition and batches
    them); the rows acknowledged before the first failure are deleted, the rest wait for the next flush."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        records = await outbox.claim_pending(conn)
        published: list[int] = []
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                producer = ctx.producer.producer
                sends = [await producer.send(r.topic, r.value, key=r.key) for r in records]
                for record, acknowledged in zip(records, sends, strict=True):
                    await acknowledged
                    PUBLISHED.labels(record.topic).inc()
                    published.append(record.id)
        except Exception:
            failed = records[len(published)]
            PUBLISH_FAILURES.labels(failed.topic).inc()
            logger.warning(
                "publish failed; the event stays in the outbox",
                exc_info=True,
                extra={"topic": failed.topic, "outbox_id": failed.id, "left": len(records) - len(published)},
            )
        await outbox.delete(conn, published)
    return len(published)


async def relay_forever(ctx: Context) -> None:
    """Publish what changes left in the outbox: at once when one commits, and every retry interval
    (rows a broker outage or another process left behind)."""
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ctx.settings.api_outbox_retry_s):
                await ctx.outbox_wake.wait()
        ctx.outbox_wake.clear()
        try:
            while await flush(ctx) == outbox.CLAIM_LIMIT:  # a full claim: more may be waiting
                pass
        except Exception:  # a relay that stopped would strand every later event
            logger.warning("outbox relay failed; trying again later", exc_info=True)
