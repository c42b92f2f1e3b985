"""Changes and the events that report them, committed together (the transactional outbox,
services/common/outbox.py).

A handler makes its change inside `change(ctx)` and names the events it causes; they are written to the
outbox in the same transaction. After the commit the request answers at once and wakes the process's
relay, which publishes them and deletes those the broker acknowledged. When the broker is down the change
still stands and the request still succeeds: its events wait in the outbox until the relay gets them
out. So no committed change loses its event, and a client never needs to retry a request that already
took effect. With several replicas, concurrent changes of one deployment may be published in either
order, and DeploymentUpdated carries occurred_at (taken while the deployment's row is locked) for
readers to keep the newest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from schemas.envelope import Envelope
from services.common.db.repositories import outbox

from .context import Context


class Change:
    """One transaction's connection, and the events to publish once it commits."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.events: list[tuple[str, Envelope]] = []

    def publish(self, topic: str, event: Envelope) -> None:
        self.events.append((topic, event))


@asynccontextmanager
async def change(ctx: Context) -> AsyncIterator[Change]:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            current = Change(conn)
            yield current
            await outbox.enqueue(conn, current.events)
    if current.events:
        ctx.outbox_wake.set()
