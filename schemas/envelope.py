"""The envelope every event carries, and the JSON codec all producers and consumers share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Self
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from .limits import INT32_MAX


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """What every event carries: subclasses fix `type` with a Literal, bump `schema_version` on a change
    that breaks readers, and say which field is their Kafka key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID = Field(
        default_factory=uuid4, description="Idempotency key: a replay carries the same id."
    )
    type: str
    schema_version: int = Field(1, ge=1, le=INT32_MAX)
    occurred_at: datetime = Field(default_factory=utcnow)

    @property
    def key(self) -> bytes:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Self:
        return cls.model_validate_json(data)


class Event(Envelope):
    """Base of the events about a deployment, which is their Kafka key (every topic's but `api-keys` and
    `deadletter`)."""

    deployment_id: UUID

    @property
    def key(self) -> bytes:
        """The Kafka key: one deployment's events stay ordered in one partition."""
        return str(self.deployment_id).encode()
