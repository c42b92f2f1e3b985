"""An event waiting in the outbox for the relay."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class OutboxRecord:
    event_id: UUID
    topic: str
    key: bytes | None
    value: bytes
