"""The transactional outbox: events written with the change they report, published after the commit.

Rows are deleted once the broker acknowledged them; a publish that failed leaves its rows for the next
flush (services/api/outbox.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.envelope import Event

from .base import Db


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    topic: str
    key: bytes | None
    value: bytes


async def enqueue(db: Db, events: Sequence[tuple[str, Event]]) -> list[OutboxRecord]:
    """Write (topic, event) pairs; call it inside the change's transaction."""
    records = []
    for topic, event in events:
        row_id = await db.fetchval(
            "INSERT INTO api_outbox (topic, key, value) VALUES ($1, $2, $3) RETURNING id",
            topic,
            event.key,
            event.to_bytes(),
        )
        records.append(OutboxRecord(row_id, topic, event.key, event.to_bytes()))
    return records


CLAIM_LIMIT = 500


async def claim_pending(db: Db, *, limit: int = CLAIM_LIMIT) -> list[OutboxRecord]:
    """The oldest unpublished rows, locked until the caller's transaction ends; rows another
    transaction holds are skipped (it is publishing them)."""
    rows = await db.fetch(
        "SELECT id, topic, key, value FROM api_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit
    )
    return [OutboxRecord(r["id"], r["topic"], r["key"], r["value"]) for r in rows]


async def delete(db: Db, ids: Sequence[int]) -> None:
    await db.execute("DELETE FROM api_outbox WHERE id = ANY($1::bigint[])", list(ids))
