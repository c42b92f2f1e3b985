"""The transactional outbox (migration 0003): events written with the change they report, deleted once
the broker acknowledged them; what is left behind is sent by the relay (services/common/outbox.py)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from schemas.envelope import Envelope
from services.common.domain.outbox import OutboxRecord

from .base import Db

# The head of an insert into the outbox, for a statement that writes its events together with the rows
# they report (ingest's). A row is relayed once `relay_after` passed; it defaults to the commit.
INSERT = "INSERT INTO outbox (event_id, topic, key, value, relay_after)"


async def enqueue(db: Db, events: Sequence[tuple[str, Envelope]]) -> None:
    """Write (topic, event) pairs, due for the relay at once; call it inside the change's transaction."""
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
        [event.to_bytes() for _, event in events],
    )


CLAIM_LIMIT = 500


async def claim_due(db: Db, *, limit: int = CLAIM_LIMIT) -> list[OutboxRecord]:
    """The oldest rows due for the relay, in the order they were written, locked until the caller's
    transaction ends; rows another transaction holds are skipped (it is publishing them)."""
    rows = await db.fetch(
        """SELECT event_id, topic, key, value FROM outbox WHERE relay_after <= now()
           ORDER BY relay_after, id LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )
    return [OutboxRecord(r["event_id"], r["topic"], r["key"], r["value"]) for r in rows]


async def delete(db: Db, event_ids: Sequence[UUID]) -> None:
    if event_ids:
        await db.execute("DELETE FROM outbox WHERE event_id = ANY($1::uuid[])", list(event_ids))
