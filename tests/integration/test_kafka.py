"""The Kafka adapters against a real Kafka-protocol server: the local broker (or
KAFKA_BOOTSTRAP_SERVERS). Every test uses its own deployment id and consumer groups, since the broker
and its topics are shared by the whole session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from cvloop.stack.kafka_broker import provisioned_topics
from schemas import DeadLetter, PredictionLogged, decode
from schemas.topics import Topic
from services.common.kafka.admin import create_topics_async
from services.common.kafka.consumer import create_consumer, process
from services.common.kafka.faust_app import create_app, registry_topic
from services.common.kafka.faust_topics import all_topic_specs
from services.common.kafka.faust_transport import FETCH_MAX_WAIT_MS
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from tests import samples

WAIT_S = 60.0


@pytest.fixture(scope="module")
async def producer(kafka_settings: Settings) -> AsyncIterator[EventProducer]:
    async with EventProducer.from_settings(kafka_settings) as events:
        yield events


def _group() -> str:
    return f"test-{uuid4()}"


async def _consume_until(
    settings: Settings, topic: str, done: Callable[[list[Any]], bool], keep: Callable[[Any], bool]
) -> list[Any]:
    """Records of `topic` that `keep` accepts, read by a fresh group until `done` says enough."""
    consumer = create_consumer(settings, _group(), topic)
    await consumer.start()
    kept: list[Any] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while not done(kept):
                batches = await consumer.getmany(timeout_ms=200)
                kept += [record for records in batches.values() for record in records if keep(record)]
    finally:
        await consumer.stop()
    return kept


async def _run_process(
    settings: Settings,
    group: str,
    topic: str,
    producer: EventProducer,
    handle: Callable[[PredictionLogged], Any],
    until: Callable[[], bool],
) -> None:
    """Run the processing loop of `group` until `until()` holds after a handled event."""
    stop = asyncio.Event()

    async def handler(event: PredictionLogged) -> None:
        await handle(event)
        if until():
            stop.set()

    consumer = create_consumer(settings, group, topic)
    await consumer.start()
    try:
        async with asyncio.timeout(WAIT_S):
            await process(consumer, decode, handler, producer, name=group, stop=stop, poll_timeout_ms=200)
    finally:
        await consumer.stop()


def _ours(deployment: UUID) -> Callable[[Any], bool]:
    return lambda record: record.key == str(deployment).encode()


async def test_broker_holds_registry_and_faust_topics(kafka_settings: Settings) -> None:
    expected = provisioned_topics()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(list(expected))
    finally:
        await admin.close()
    assert {topic["topic"]: len(topic["partitions"]) for topic in described} == expected


async def test_publish_and_consume_keyed_event_with_headers(
    kafka_settings: Settings, producer: EventProducer
) -> None:
    event = samples.prediction_logged(deployment_id=uuid4())
    sent = await producer.publish(Topic.PREDICTIONS, event, headers=[("event-type", b"prediction.logged")])

    (record,) = await _consume_until(
        kafka_settings, Topic.PREDICTIONS, done=bool, keep=_ours(event.deployment_id)
    )

    assert (record.partition, record.offset) == (sent.partition, sent.offset)
    assert record.key == str(event.deployment_id).encode()
    assert dict(record.headers) == {"event-type": b"prediction.logged"}
    assert decode(Topic.PREDICTIONS, record.value) == event


async def test_one_deployment_stays_in_order_on_one_partition(
    kafka_settings: Settings, producer: EventProducer
) -> None:
    deployment = uuid4()
    events = [samples.prediction_logged(deployment_id=deployment) for _ in range(20)]
    # Concurrent sends share linger batches, which the idempotent producer keeps in order.
    await asyncio.gather(*(producer.publish(Topic.PREDICTIONS, event) for event in events))

    records = await _consume_until(
        kafka_settings, Topic.PREDICTIONS, done=lambda got: len(got) >= 20, keep=_ours(deployment)
    )

    assert len({record.partition for record in records}) == 1
    assert [decode(Topic.PREDICTIONS, r.value).event_id for r in records] == [e.event_id for e in events]


async def test_publish_many_puts_each_key_where_publish_does_in_order(
    kafka_settings: Settings, producer: EventProducer
) -> None:
    deployments = [uuid4() for _ in range(6)]  # six keys spread over the topic's partitions
    events = [samples.prediction_logged(deployment_id=deployments[i % 6]) for i in range(60)]
    # One event per key through `publish` first: the partition its key maps to.
    expected = {
        d: (await producer.publish(Topic.PREDICTIONS, events[i])).partition for i, d in enumerate(deployments)
    }
    await producer.publish_many(Topic.PREDICTIONS, events[6:])

    records = await _consume_until(
        kafka_settings,
        Topic.PREDICTIONS,
        done=lambda got: len(got) >= 60,
        keep=lambda record: record.key in {str(d).encode() for d in deployments},
    )

    for deployment in deployments:
        mine = [r for r in records if r.key == str(deployment).encode()]
        assert {r.partition for r in mine} == {expected[deployment]}
        sent = [e.event_id for e in events if e.deployment_id == deployment]
        assert [decode(Topic.PREDICTIONS, r.value).event_id for r in mine] == sent
    assert len(set(expected.values())) > 1  # the keys did spread


async def test_committed_offsets_resume_a_restarted_group(
    kafka_settings: Settings, producer: EventProducer
) -> None:
    deployment, group = uuid4(), _group()
    first = [samples.prediction_logged(deployment_id=deployment) for _ in range(3)]
    for event in first:
        await producer.publish(Topic.PREDICTIONS, event)
    handled: list[PredictionLogged] = []

    async def collect(event: PredictionLogged) -> None:
        if event.deployment_id == deployment:
            handled.append(event)

    await _run_process(kafka_settings, group, Topic.PREDICTIONS, producer, collect, lambda: len(handled) >= 3)
    assert [e.event_id for e in handled] == [e.event_id for e in first]

    second = [samples.prediction_logged(deployment_id=deployment) for _ in range(2)]
    for event in second:
        sent = await producer.publish(Topic.PREDICTIONS, event)
    handled.clear()
    # Same group, after its only member left: it starts where the first one committed.
    await _run_process(kafka_settings, group, Topic.PREDICTIONS, producer, collect, lambda: len(handled) >= 2)

    assert [e.event_id for e in handled] == [e.event_id for e in second]
    tp = TopicPartition(Topic.PREDICTIONS, sent.partition)
    checker = create_consumer(kafka_settings, group)
    await checker.start()
    try:
        assert await checker.committed(tp) == sent.offset + 1
    finally:
        await checker.stop()


async def test_bad_messages_are_dead_lettered_and_the_stream_goes_on(
    kafka_settings: Settings, producer: EventProducer
) -> None:
    deployment, group = uuid4(), _group()
    key = str(deployment).encode()
    malformed = json.loads(samples.prediction_logged(deployment_id=deployment).to_bytes())
    malformed["champion"]["latency_ms"] = -1
    malformed_bytes = json.dumps(malformed).encode()
    refused = samples.prediction_logged(deployment_id=deployment)
    good = samples.prediction_logged(deployment_id=deployment)

    bad_sent = await producer.publish_bytes(Topic.PREDICTIONS, malformed_bytes, key=key)
    refused_sent = await producer.publish(Topic.PREDICTIONS, refused)
    await producer.publish(Topic.PREDICTIONS, good)
    handled: list[PredictionLogged] = []

    async def handle(event: PredictionLogged) -> None:
        if event.deployment_id != deployment:
            return
        if event.event_id == refused.event_id:
            raise LookupError(f"deployment {deployment} is unknown")
        handled.append(event)

    await _run_process(kafka_settings, group, Topic.PREDICTIONS, producer, handle, lambda: bool(handled))
    assert handled == [good]

    letters = [
        DeadLetter.from_bytes(record.value)
        for record in await _consume_until(
            kafka_settings,
            Topic.DEADLETTER,
            done=lambda got: len(got) >= 2,
            keep=_from_group(group, key),
        )
    ]
    bad, refusal = sorted(letters, key=lambda letter: letter.source_offset)
    assert bad.error_type == "validation"
    assert bad.error.startswith("champion.latency_ms: ")
    assert bad.original_value == malformed_bytes
    assert bad.source_key == key
    assert (bad.source_topic, bad.source_partition, bad.source_offset) == (
        "predictions",
        bad_sent.partition,
        bad_sent.offset,
    )
    assert refusal.error_type == "LookupError"
    assert refusal.source_offset == refused_sent.offset
    assert PredictionLogged.from_bytes(refusal.original_value or b"") == refused


def _from_group(group: str, key: bytes | None = None) -> Callable[[Any], bool]:
    """Letters of the group (of one message key when given: other tests' poison shares the topic)."""

    def keep(record: Any) -> bool:
        letter = DeadLetter.from_bytes(record.value)
        return letter.consumer == group and key in (None, letter.source_key)

    return keep


async def test_faust_agent_receives_registry_events(
    kafka_settings: Settings, producer: EventProducer
) -> None:
    deployment = uuid4()
    events = [samples.prediction_logged(deployment_id=deployment) for _ in range(3)]
    app = create_app(f"cvloop-test-{uuid4()}", kafka_settings)
    received: list[tuple[str, PredictionLogged]] = []
    all_in = asyncio.Event()

    async def agent(stream: Any) -> None:
        async for key, value in stream.items():
            event = decode(Topic.PREDICTIONS, value)
            if event.deployment_id == deployment:
                received.append((key, event))
                if len(received) == len(events):
                    all_in.set()

    app.agent(registry_topic(app, Topic.PREDICTIONS), name="test-agent")(agent)
    for event in events:
        await producer.publish(Topic.PREDICTIONS, event)

    await app.start()
    try:
        async with asyncio.timeout(WAIT_S):
            await all_in.wait()
        # The running aiokafka fetcher waits what faust_transport sets, not faust's fixed 1,500 ms.
        fetch_wait = app.consumer._thread._consumer._fetcher._fetch_max_wait_ms
    finally:
        await app.stop()

    assert received == [(str(deployment), event) for event in events]
    assert fetch_wait == FETCH_MAX_WAIT_MS


async def test_a_faust_worker_rereads_what_it_fetched_on_a_partition_its_group_never_committed(
    kafka_settings: Settings, producer: EventProducer
) -> None:
    """When a rebalance's recovery ends faust seeks every partition to its committed offset and drops what
    its streams hold, to read it again: a partition whose group never committed (taken over from a worker
    killed before its first commit) must go back to its start too, not stay where the fetcher got to, and
    nothing may reach a stream between the seek and the drop (issue 16: a surviving pipeline worker never
    counted the partitions it took over)."""
    deployment = uuid4()
    events = [samples.prediction_logged(deployment_id=deployment) for _ in range(3)]
    for event in events:
        sent = await producer.publish(Topic.PREDICTIONS, event)
    group = f"cvloop-test-{uuid4()}"
    app = create_app(group, kafka_settings, broker_commit_interval=3600.0)  # no commit while it runs
    received: list[UUID] = []
    once, twice = asyncio.Event(), asyncio.Event()  # every event received once, then twice

    async def agent(stream: Any) -> None:
        async for key, value in stream.items():
            if key == str(deployment):  # the topic also holds other tests' malformed events
                received.append(decode(Topic.PREDICTIONS, value).event_id)
                if len(received) == len(events):
                    once.set()
                if len(received) == 2 * len(events):
                    twice.set()

    app.agent(registry_topic(app, Topic.PREDICTIONS), name="test-agent")(agent)
    await app.start()
    try:
        async with asyncio.timeout(WAIT_S):
            await once.wait()
        checker = create_consumer(kafka_settings, group)
        await checker.start()
        try:
            assert await checker.committed(TopicPartition(Topic.PREDICTIONS, sent.partition)) is None
        finally:
            await checker.stop()
        # What the end of a recovery does: seek, clear the streams' queues, resume. Nothing is handed to a
        # stream between the seek and the clear, where it would be lost.
        await app.consumer.perform_seek()
        assert not app.consumer.flow_active
        app.flow_control.resume()
        app.consumer.resume_flow()
        async with asyncio.timeout(WAIT_S):
            await twice.wait()
    finally:
        await app.stop()

    assert received == [e.event_id for e in events] * 2


async def test_create_topics_on_the_local_broker_reports_what_it_made_at_start(
    kafka_settings: Settings,
) -> None:
    if kafka_settings.is_external("kafka"):
        pytest.skip("a real Kafka creates topics: see the real_kafka test")
    outcomes = dict(await create_topics_async(kafka_settings))
    assert outcomes == dict.fromkeys(provisioned_topics(), "exists")


@pytest.mark.real_kafka
async def test_create_topics_creates_the_registry_then_reports_it_exists(
    real_kafka_settings: Settings,
) -> None:
    await create_topics_async(real_kafka_settings)
    again = dict(await create_topics_async(real_kafka_settings))
    expected = {spec.name for spec in all_topic_specs()}
    assert again == dict.fromkeys(expected, "exists")


async def test_an_outage_stops_the_loop_uncommitted_instead_of_dead_lettering(
    kafka_settings: Settings, producer: EventProducer
) -> None:
    deployment, group = uuid4(), _group()
    sent = await producer.publish(Topic.PREDICTIONS, samples.prediction_logged(deployment_id=deployment))

    async def handle(event: PredictionLogged) -> None:
        if event.deployment_id == deployment:
            raise ConnectionRefusedError("postgres is down")

    consumer = create_consumer(kafka_settings, group, Topic.PREDICTIONS)
    await consumer.start()
    try:
        with pytest.raises(ConnectionRefusedError):
            async with asyncio.timeout(WAIT_S):
                await process(consumer, decode, handle, producer, name=group, poll_timeout_ms=200)
        partition = TopicPartition(Topic.PREDICTIONS, sent.partition)
        committed = await consumer.committed(partition)
    finally:
        await consumer.stop()
    assert committed is None or committed <= sent.offset  # the message will be read again

    # Dead letters are asynchronous to look for: a marker published after the loop stopped bounds the wait.
    letter = DeadLetter(
        consumer=f"{group}-marker",
        source_topic="marker",
        source_partition=0,
        source_offset=0,
        original_value=None,
        error_type="marker",
        error="marker",
    )
    marker = await producer.publish_bytes(Topic.DEADLETTER, letter.to_bytes(), key=group.encode())
    seen = await _consume_until(
        kafka_settings,
        Topic.DEADLETTER,
        done=lambda got: any(record.offset == marker.offset for record in got),
        keep=lambda record: record.key == group.encode(),
    )
    assert [record.offset for record in seen] == [marker.offset]  # nothing of ours but the marker


async def test_a_message_too_large_to_dead_letter_whole_is_dead_lettered_without_its_bytes(
    kafka_settings: Settings, producer: EventProducer
) -> None:
    deployment, group = uuid4(), _group()
    key = str(deployment).encode()
    huge = b"not json " * 100_000  # fits a record, but not once base64-encoded in a letter
    sent = await producer.publish_bytes(Topic.PREDICTIONS, huge, key=key)
    good = samples.prediction_logged(deployment_id=deployment)
    await producer.publish(Topic.PREDICTIONS, good)
    handled: list[PredictionLogged] = []

    async def handle(event: PredictionLogged) -> None:
        if event.deployment_id == deployment:
            handled.append(event)

    await _run_process(kafka_settings, group, Topic.PREDICTIONS, producer, handle, lambda: bool(handled))
    assert handled == [good]

    def of_the_huge_message(record: Any) -> bool:
        letter = DeadLetter.from_bytes(record.value)
        origin = (letter.consumer, letter.source_partition, letter.source_offset)
        return origin == (group, sent.partition, sent.offset)

    [record] = await _consume_until(
        kafka_settings, Topic.DEADLETTER, done=lambda got: len(got) >= 1, keep=of_the_huge_message
    )
    letter = DeadLetter.from_bytes(record.value)
    assert letter.original_value is None
    assert f"original value of {len(huge)} bytes left out" in letter.error
