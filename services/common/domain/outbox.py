"""An event waiting in the outbox for the relay, and the rule that keeps one out that Kafka would refuse."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import orjson

from schemas.envelope import Event
from schemas.topics import MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class OutboxRecord:
    event_id: UUID
    topic: str
    key: bytes | None
    value: bytes


class EventTooLarge(ValueError):
    """An event larger than a topic takes: written to the outbox, it could never be published."""

    def __init__(self, event: Event, size: int) -> None:
        self.field = _largest_field(event)
        self.size = size
        super().__init__(
            f"{self.field} makes the {event.type} event {size} bytes, more than the {MAX_MESSAGE_BYTES} "
            "bytes a topic takes"
        )


def publishable_value(event: Event) -> bytes:
    """The event's bytes; EventTooLarge, naming the field to blame, when Kafka would refuse them."""
    value = event.to_bytes()
    if len(value) > MAX_MESSAGE_BYTES:
        raise EventTooLarge(event, len(value))
    return value


def _largest_field(event: Event) -> str:
    fields = event.model_dump(mode="json")
    return max(fields, key=lambda name: len(orjson.dumps(fields[name])))
