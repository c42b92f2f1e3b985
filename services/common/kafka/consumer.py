"""Consuming at least once: decode, handle, then commit. A message that cannot be handled because of
what it holds is dead-lettered, so the stream keeps going; when a batch's effect fails as a whole because
of some of its messages, those are found by halving the batch (failures.isolate), dead-lettered, and the
rest applied. Any other failure (a server down, a timeout) stops the loop before the commit, so the
message is retried when the consumer restarts instead of being pushed aside. Handlers must be idempotent
(a replay, or a half of a batch applied again, repeats them)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from services.common.settings import Broker, Settings

from .deadletter import publish_dead_letter
from .failures import MESSAGE_ERRORS, isolate
from .producer import EventProducer
from .supervised import Progress

logger = logging.getLogger(__name__)

T = TypeVar("T")
Decoder = Callable[[str, bytes], T]  # decode(topic, value), as schemas.codec.decode
Handler = Callable[[T], Awaitable[None]]
# Handles a poll's decoded events together; answers one entry per event: None when done, or the
# message error (one of MESSAGE_ERRORS) that sends it to `deadletter`. When it raises a message error
# instead, it is called again on halves of the events until the ones at fault stand alone.
BatchHandler = Callable[[list[T]], Awaitable[Sequence[Exception | None]]]


class GroupTimeouts(NamedTuple):
    session_ms: int
    heartbeat_ms: int
    request_ms: int | None  # None: the client's own default


def group_timeouts(settings: Settings) -> GroupTimeouts:
    """A real Kafka keeps aiokafka's defaults. The local brokers get a short session: a member that
    leaves the mock's group blocks the next join for its session timeout less one second, and on tansu
    a dead member's partitions move after it. Every member of a group says the same, whoever started
    it: tansu keeps one session timeout per group, the one its first member asked for, so a member
    heartbeating slower than that would be expelled over and over. A local broker answers a group request
    within about its session timeout; one unanswered for 15 s is sent again on a new connection (tansu
    once left a SyncGroup unanswered for minutes, docs/local-stack.md), not after faust's 90 s."""
    if settings.kafka_broker is Broker.KAFKA:
        return GroupTimeouts(session_ms=10_000, heartbeat_ms=3_000, request_ms=None)
    return GroupTimeouts(session_ms=2_000, heartbeat_ms=500, request_ms=15_000)


def create_consumer(settings: Settings, group_id: str, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """Offsets are committed by `process` after each effect; a new group starts from the beginning."""
    timeouts = group_timeouts(settings)
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": timeouts.session_ms,
        "heartbeat_interval_ms": timeouts.heartbeat_ms,
    }
    if timeouts.request_ms is not None:
        config["request_timeout_ms"] = timeouts.request_ms
    return AIOKafkaConsumer(*topics, **(config | overrides))


async def started_consumer(
    settings: Settings, group_id: str, *topics: str, **overrides: Any
) -> AIOKafkaConsumer:
    """`create_consumer`'s consumer, started (and stopped again when it fails to start)."""
    consumer = create_consumer(settings, group_id, *topics, **overrides)
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def consumer_at_end(
    settings: Settings, group_prefix: str, topic: str, timeout_s: float = 30.0
) -> AIOKafkaConsumer:
    """A started consumer of a group of its own (every process sees every event), its partitions
    assigned and positioned at their current end: what is committed after this returns is read."""
    consumer = await started_consumer(
        settings, f"{group_prefix}-{uuid.uuid4()}", topic, auto_offset_reset="latest"
    )
    try:
        async with asyncio.timeout(timeout_s):
            while not consumer.assignment():
                # Polling drives the group join; anything it returns is read again by the loop.
                for partition, records in (await consumer.getmany(timeout_ms=100)).items():
                    consumer.seek(partition, records[0].offset)
            for partition in consumer.assignment():
                await consumer.position(partition)  # resolves "latest" now, not at the first fetch
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def process(
    consumer: AIOKafkaConsumer,
    decode: Decoder[T],
    handle: Handler[T],
    dead_letters: EventProducer,
    *,
    name: str,
    stop: asyncio.Event | None = None,
    poll_timeout_ms: int = 500,
    progress: Progress | None = None,
) -> None:
    """Run until `stop` is set (or the task is cancelled): decode each record with decode(topic, value),
    await handle(event), then commit the partition past the batch. A record that fails to decode, or
    whose handler raises one of MESSAGE_ERRORS, is published to `deadletter` (as `name`) before the
    commit covers it; any other handler error propagates with the batch uncommitted. Each poll got
    through is reported to `progress`."""
    while stop is None or not stop.is_set():
        batches = await consumer.getmany(timeout_ms=poll_timeout_ms)
        if progress is not None and not batches:
            progress.moved()
        for tp, records in batches.items():
            for record in records:
                await _process_one(record, decode, handle, dead_letters, name)
            try:
                await consumer.commit({tp: records[-1].offset + 1})
            except CommitFailedError:
                # The partition moved to another member during the batch; it replays from the last
                # commit there, which handlers tolerate.
                logger.warning("commit failed after a rebalance", extra={"consumer": name, "tp": str(tp)})
            if progress is not None:
                progress.moved()


async def _process_one(
    record: ConsumerRecord[bytes, bytes],
    decode: Decoder[T],
    handle: Handler[T],
    dead_letters: EventProducer,
    name: str,
) -> None:
    try:
        event = decode(record.topic, record.value)
    except Exception as exc:  # whatever the bytes are, failing to read them is the message's fault
        await publish_dead_letter(dead_letters, record, exc, name)
        return
    try:
        await handle(event)
    except MESSAGE_ERRORS as exc:
        await publish_dead_letter(dead_letters, record, exc, name)


async def process_batches(
    consumer: AIOKafkaConsumer,
    decode: Decoder[T],
    handle: BatchHandler[T],
    dead_letters: EventProducer,
    *,
    name: str,
    stop: asyncio.Event | None = None,
    poll_timeout_ms: int = 500,
    max_records: int | None = None,
    fill_ms: int = 0,
    progress: Progress | None = None,
) -> None:
    """`process` for handlers that gain from seeing many events at once (one query or one publish
    round for the poll): decode every record of the poll, await handle(events), dead-letter the records
    that failed to decode or that the handler answered with (or raised, found by halving) a message
    error, then commit every partition of the poll and report it to `progress`. A handler that raises,
    or answers, another error stops the loop uncommitted.

    While a poll is handled, the next one is fetched and decoded (its handling starts once the previous
    one is committed, so commits stay in order); with `max_records` and `fill_ms`, a poll that found
    records keeps polling for up to `fill_ms` until it holds `max_records`: a fetch may bring a single
    producer batch (a few dozen records), and the handler's fixed costs are better shared by more."""
    handling: asyncio.Task[None] | None = None
    try:
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=poll_timeout_ms, max_records=max_records)
            if not batches:
                if handling is not None:
                    await handling
                    handling = None
                if progress is not None:
                    progress.moved()  # nothing left to do is no stall
                continue
            if max_records and fill_ms:
                await _fill(consumer, batches, max_records, fill_ms)
            readable: list[ConsumerRecord[bytes, bytes]] = []
            events: list[T] = []
            rejected: list[tuple[ConsumerRecord[bytes, bytes], BaseException]] = []
            for records in batches.values():
                for record in records:
                    try:
                        events.append(decode(record.topic, record.value))
                        readable.append(record)
                    except Exception as exc:  # failing to read the bytes is the message's fault
                        rejected.append((record, exc))
            if handling is not None:
                await handling
            handling = asyncio.create_task(
                _handle_and_commit(
                    consumer, batches, readable, events, rejected, handle, dead_letters, name, progress
                )
            )
        if handling is not None:
            await handling
    finally:
        if handling is not None and not handling.done():
            handling.cancel()


async def _handle_and_commit(
    consumer: AIOKafkaConsumer,
    batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    readable: list[ConsumerRecord[bytes, bytes]],
    events: list[T],
    rejected: list[tuple[ConsumerRecord[bytes, bytes], BaseException]],
    handle: BatchHandler[T],
    dead_letters: EventProducer,
    name: str,
    progress: Progress | None,
) -> None:
    outcomes = await isolate(events, handle) if events else []
    for record, outcome in zip(readable, outcomes, strict=True):
        if outcome is not None:
            if not isinstance(outcome, MESSAGE_ERRORS):
                raise outcome
            rejected.append((record, outcome))
    await asyncio.gather(*(publish_dead_letter(dead_letters, r, e, name) for r, e in rejected))
    try:
        await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
    except CommitFailedError:
        logger.warning("commit failed after a rebalance", extra={"consumer": name})
    if progress is not None:
        progress.moved()


async def _fill(
    consumer: AIOKafkaConsumer,
    batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    max_records: int,
    fill_ms: int,
) -> None:
    deadline = asyncio.get_running_loop().time() + fill_ms / 1000
    while (held := sum(map(len, batches.values()))) < max_records:
        left_ms = int((deadline - asyncio.get_running_loop().time()) * 1000)
        if left_ms <= 0:
            return
        more = await consumer.getmany(timeout_ms=left_ms, max_records=max_records - held)
        if not more:
            return
        for tp, records in more.items():
            batches.setdefault(tp, []).extend(records)
