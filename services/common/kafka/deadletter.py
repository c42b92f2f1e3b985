"""What a consumer does with a message it cannot handle: keep it, with why and where it came from,
on the `deadletter` topic, so the stream goes on and the message can be replayed once fixed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from aiokafka.errors import MessageSizeTooLargeError
from pydantic import ValidationError

from schemas.codec import decode, describe
from schemas.deadletter import DeadLetter
from schemas.topics import Topic

from .failures import MESSAGE_ERRORS, applied_whole, isolate
from .metrics import DEAD_LETTERED
from .producer import EventProducer

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SourceRecord(Protocol):
    """Where a message came from: aiokafka's ConsumerRecord and faust's Message both fit."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def explain(error: BaseException) -> tuple[str, str]:
    """(error_type, error): a validation error names each failing field; anything else its class."""
    if isinstance(error, ValidationError):
        return "validation", describe(error)
    return type(error).__name__, str(error) or repr(error)


def build_dead_letter(record: SourceRecord, error: BaseException, consumer: str) -> DeadLetter:
    error_type, message = explain(error)
    return DeadLetter(
        consumer=consumer,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        source_key=record.key,
        original_value=record.value,
        error_type=error_type,
        error=message,
    )


def without_original_value(letter: DeadLetter) -> DeadLetter:
    size = len(letter.original_value or b"")
    return letter.model_copy(
        update={
            "original_value": None,
            "error": f"{letter.error} (original value of {size} bytes left out: too large to dead-letter; "
            "it is still at the source offset until retention removes it)",
        }
    )


async def publish_dead_letter(
    producer: EventProducer, record: SourceRecord, error: BaseException, consumer: str
) -> DeadLetter:
    """Publish and wait for the acknowledgement: the caller commits the source offset right after."""
    letter = build_dead_letter(record, error, consumer)
    try:
        await producer.publish(Topic.DEADLETTER, letter)
    except MessageSizeTooLargeError:
        # base64 makes the letter a third larger than the message it keeps; without the original bytes
        # it still says what failed and where to find them, and the stream is not stuck on it.
        letter = without_original_value(letter)
        await producer.publish(Topic.DEADLETTER, letter)
    DEAD_LETTERED.labels(consumer).inc()
    logger.warning(
        "message dead-lettered",
        extra={
            "consumer": consumer,
            "source": f"{record.topic}/{record.partition}@{record.offset}",
            "error_type": letter.error_type,
            "error": letter.error,
        },
    )
    return letter


class DeadLetters:
    """A stream's way past a message it cannot handle: dead-letter it (as `consumer`) and go on."""

    def __init__(
        self,
        producer: EventProducer,
        consumer: str,
        on_dead_lettered: Callable[[SourceRecord], None] = lambda _: None,
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.on_dead_lettered = on_dead_lettered

    async def send(self, record: SourceRecord, error: BaseException) -> None:
        await publish_dead_letter(self.producer, record, error, self.consumer)
        self.on_dead_lettered(record)

    async def decoded(self, record: SourceRecord) -> Any | None:
        """The record's event, or None once it is dead-lettered: whatever the bytes are, failing to read
        them is the message's fault."""
        try:
            return decode(record.topic, record.value or b"")
        except Exception as exc:
            await self.send(record, exc)
            return None

    @asynccontextmanager
    async def guard(self, record: SourceRecord) -> AsyncIterator[None]:
        """Inside it, a message error (MESSAGE_ERRORS) dead-letters `record` and the stream goes on after
        the block; any other error (an outage) propagates, leaving it unacknowledged."""
        try:
            yield
        except MESSAGE_ERRORS as exc:
            await self.send(record, exc)

    async def isolating(
        self,
        items: list[T],
        record: Callable[[T], SourceRecord],
        apply: Callable[[list[T]], Awaitable[None]],
    ) -> None:
        """apply(items) together; when it fails because of what some of them hold, those are found by
        halving (failures.isolate) and dead-lettered, and the rest applied. Other errors propagate."""
        outcomes = await isolate(items, applied_whole(apply))
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome is not None:
                await self.send(record(item), outcome)
