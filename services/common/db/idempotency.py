"""Exactly-once effects over at-least-once delivery: a consumer claims each event id once."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def claim_event(conn: asyncpg.Connection, consumer: str, event_id: UUID) -> bool:
    """True the first time `consumer` sees `event_id`; call it inside the effect's transaction, so a
    rolled-back effect leaves the event unclaimed and a redelivery does it again."""
    status = await conn.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        consumer,
        event_id,
    )
    return status == "INSERT 0 1"
