"""Publishing events: one idempotent, batching, compressing producer per service."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, Self

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import RecordMetadata

from services.common.settings import Settings

Headers = Sequence[tuple[str, bytes]]


class Publishable(Protocol):
    """What `publish` needs from an event: `schemas.envelope.Event` and `DeadLetter` both qualify."""

    @property
    def key(self) -> bytes: ...

    def to_bytes(self) -> bytes: ...


@functools.lru_cache(maxsize=4096)
def _key_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def keyed_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's default choice (murmur2 of the key, as the Java client), remembered per key: keys are
    deployment ids, few and repeated, and the pure-Python hash costs more than the rest of a send."""
    if key is None:
        return DefaultPartitioner()(key, all_partitions, available)
    return all_partitions[_key_partition(key, len(all_partitions))]


# Tansu answers ListOffsets "latest" with the last batch's first offset + 1, so end offsets (serving's
# follower seeking to the end, lag, faust's changelog recovery) are exact only when every batch holds
# one record: a batch never takes a second record past this size.
SINGLE_RECORD_BATCH = 1


def create_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """Idempotence with acks=all keeps a retried send from being written twice; a short linger lets
    concurrent sends share a gzip-compressed batch."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "enable_idempotence": not settings.runs_tansu,  # tansu has no idempotent producer
        "acks": "all",
        "linger_ms": 5,
        "compression_type": "gzip",
        "partitioner": keyed_partitioner,
    }
    if settings.runs_tansu:
        config["max_batch_size"] = SINGLE_RECORD_BATCH
    return AIOKafkaProducer(**(config | overrides))


class EventProducer:
    """An aiokafka producer that publishes events keyed by their own key; each call waits for the
    broker's acknowledgement, so a caller may commit what led to it once it returns."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Self:
        return cls(create_producer(settings, **overrides))

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def publish(self, topic: str, event: Publishable, headers: Headers | None = None) -> RecordMetadata:
        return await self.publish_bytes(topic, event.to_bytes(), key=event.key, headers=headers)

    async def publish_many(self, topic: str, events: Sequence[Publishable]) -> list[RecordMetadata]:
        """Publish events in order and wait for every acknowledgement. Each send is queued before the next
        starts: thousands of concurrent `publish` calls would all wake whenever a batch drains."""
        sent = [await self.producer.send(topic, event.to_bytes(), key=event.key) for event in events]
        return list(await asyncio.gather(*sent))

    async def publish_bytes(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers | None = None
    ) -> RecordMetadata:
        return await self.producer.send_and_wait(
            topic, value, key=key, headers=list(headers) if headers else None
        )
