"""The record a consumer writes to `deadletter` when it cannot handle a message."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from .envelope import utcnow


class DeadLetter(BaseModel):
    """Keeps the original bytes untouched, so the message can be replayed once the cause is fixed."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    type: Literal["deadletter"] = "deadletter"
    schema_version: int = 1
    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)
    consumer: str = Field(description="The service or consumer group that gave up on the message.")
    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)
    source_key: bytes | None = Field(None, description="The original key, base64 in JSON.")
    original_value: bytes | None = Field(description="The original value bytes, base64 in JSON.")
    error_type: str = Field(
        description="'validation' for a message that does not match its schema, else the "
        "exception's class name."
    )
    error: str = Field(description="What was wrong, naming the field for a validation error.")

    @property
    def key(self) -> bytes:
        return self.source_topic.encode()

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Self:
        return cls.model_validate_json(data)
