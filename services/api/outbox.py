"""Changes and the events that report them, committed together (the transactional outbox).

A handler makes its change inside `change(ctx)` and names the events it causes; they are written to the
outbox table in the same transaction, published right after the commit, and deleted once the broker
acknowledged them. When the broker is down the change still stands and the request still succeeds: the
events stay in the outbox and the next flush (the next change, or `relay_forever`) publishes them, oldest
first, once the broker is back. So no committed change loses its event, and a client never needs to retry
a request that already took effect. A row can go out twice (sent, then the delete failed): readers dedupe
by event id. Concurrent changes of one deployment may be published in either order; DeploymentUpdated
carries occurred_at, taken while the deployment's row is locked, for readers to keep the newest.
"""

from __future__ import annotations

import asyncio
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


PUBLISH_TIMEOUT_S = 10.0  # a request waits this long for the broker before leaving its events to the relay


@asynccontextmanager
async def change(ctx: Context) -> AsyncIterator[Change]:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            current = Change(conn)
            yield current
            await outbox.enqueue(conn, current.events)
    if current.events:
        try:
            await flush(ctx)
        except Exception:  # the change stands: the relay publishes its events later
            logger.warning("outbox flush failed after a commit", exc_info=True)


async def flush(ctx: Context) -> int:
    """Publish every pending outbox row, oldest first, so events left behind by an outage go out before
    newer ones. Rows are locked while they are sent: a concurrent flush skips them instead of sending
    them twice. Stops at the first failure and leaves the rest for later."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        records = await outbox.claim_pending(conn)
        published: list[int] = []
        for record in records:
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                    await ctx.producer.publish_bytes(record.topic, record.value, key=record.key)
            except Exception:
                PUBLISH_FAILURES.labels(record.topic).inc()
                logger.warning(
                    "publish failed; the event stays in the outbox",
                    exc_info=True,
                    extra={"topic": record.topic, "outbox_id": record.id},
                )
                break
            PUBLISHED.labels(record.topic).inc()
            published.append(record.id)
        await outbox.delete(conn, published)
    return len(published)


async def relay_forever(ctx: Context) -> None:
    while True:
        await asyncio.sleep(ctx.settings.api_outbox_retry_s)
        try:
            await flush(ctx)
        except Exception:  # a relay that stopped would strand every later leftover event
            logger.warning("outbox relay failed; trying again later", exc_info=True)
