"""The transactional outbox (migrations 0003, 0008): events written with the change they report, deleted
once the broker acknowledged them; what is left behind is sent by the relay (services/common/outbox.py),
and what it can never send is parked with the reason."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from schemas.envelope import Envelope
from services.common.domain.outbox import OutboxRecord, publishable_value

from .base import Db

# The head of an insert into the outbox, for a statement that writes its events together with the rows
# they report (ingest's). A row is relayed once `relay_after` passed; it defaults to the commit.
INSERT = "INSERT INTO outbox (event_id, topic, key, value, relay_after)"


async def enqueue(db: Db, events: Sequence[tuple[str, Envelope]]) -> None:
    """Write (topic, event) pairs, due for the relay at once; call it inside the change's transaction.
    EventTooLarge (naming the field) for an event no topic would take: nothing is written."""
    if not events:
        return
    await db.execute(
        f"""{INSERT}
            SELECT e.event_id, e.topic, e.key, e.value, now()
            FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[]) WITH ORDINALITY
                AS e(event_id, topic, key, value, position)
            ORDER BY e.position""",
        [event.event_id for _, event in events],
        [topic for topic, _ in events],
        [event.key for _, event in events],
        [publishable_value(event) for _, event in events],
    )


CLAIM_LIMIT = 500


async def claim_due(db: Db, *, limit: int = CLAIM_LIMIT) -> list[OutboxRecord]:
    """The oldest rows due for the relay, in the order they were written, locked until the caller's
    transaction ends; rows another transaction holds are skipped (it is publishing them)."""
    rows = await db.fetch(
        """SELECT event_id, topic, key, value FROM outbox WHERE relay_after <= now() AND parked_at IS NULL
           ORDER BY relay_after, id LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )
    return [OutboxRecord(r["event_id"], r["topic"], r["key"], r["value"]) for r in rows]


async def delete(db: Db, event_ids: Sequence[UUID]) -> None:
    if event_ids:
        await db.execute("DELETE FROM outbox WHERE event_id = ANY($1::uuid[])", list(event_ids))


async def park(db: Db, event_id: UUID, reason: str) -> None:
    """Keep the row, with why it cannot be published, out of the relay's way."""
    await db.execute(
        "UPDATE outbox SET parked_at = now(), parked_reason = $2 WHERE event_id = $1", event_id, reason
    )


async def parked(db: Db) -> list[tuple[OutboxRecord, str]]:
    """The parked rows, oldest first, with their reasons."""
    rows = await db.fetch(
        "SELECT event_id, topic, key, value, parked_reason FROM outbox WHERE parked_at IS NOT NULL "
        "ORDER BY parked_at, id"
    )
    return [(OutboxRecord(r["event_id"], r["topic"], r["key"], r["value"]), r["parked_reason"]) for r in rows]
