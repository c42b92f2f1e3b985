"""The ingest service: the monitor endpoint, the `predictions.raw` consumer, the persistence consumer
and the outbox relay, in one process sharing one Postgres pool and one producer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from schemas.codec import decode
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common.auth import RequireScope
from services.common.db.pool import open_pool, ping
from services.common.http import create_app, field_error
from services.common.kafka.consumer import BatchHandler, Decoder, process_batches, started_consumer
from services.common.kafka.producer import EventProducer
from services.common.kafka.supervised import SupervisedConsumer
from services.common.key_changes import KeyChanges
from services.common.outbox import Relay
from services.common.storage.object_store import ObjectStore

from . import outbox, persistence, raw_consumer
from .deployments import RecentDeployments
from .intake import Refused
from .model_versions import ModelVersionLabels
from .recorder import RecordingQueue
from .routes import BODY_MODELS, Intake, router
from .settings import IngestSettings

# Events of a busy deployment share a partition: large producer batches let its readers fetch many
# at once (a fetch from librdkafka's mock brings one batch; on tansu they send one record per batch).
PRODUCER_BATCH_BYTES = 256 * 1024
RELAY_INTERVAL_S = 5.0  # the longest a due outbox row waits for the relay
BATCH_FILL_MS = 100  # a poll waits this long at most for more records, up to the batch size


def _consumer(
    settings: IngestSettings,
    group: str,
    topic: Topic,
    decoder: Decoder[Any],
    handle: BatchHandler[Any],
    dead_letters: EventProducer,
    stop: asyncio.Event,
) -> SupervisedConsumer[AIOKafkaConsumer]:
    """A consumer group run until `stop`, restarted after an outage."""

    async def consume(consumer: AIOKafkaConsumer) -> None:
        await process_batches(
            consumer,
            decoder,
            handle,
            dead_letters,
            name=group,
            stop=stop,
            max_records=settings.ingest_batch_records,
            fill_ms=BATCH_FILL_MS,
            progress=supervised.progress,
        )

    supervised = SupervisedConsumer(group, lambda: started_consumer(settings, group, str(topic)), consume)
    return supervised


def build_app(settings: IngestSettings) -> FastAPI:
    state: dict[str, Callable[[], Awaitable[str | None]]] = {}

    async def ready() -> str | None:
        check = state.get("ready")
        return await check() if check else "starting"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(settings.database_url, max_size=settings.ingest_db_pool_size)
        producer = EventProducer.from_settings(settings, max_batch_size=PRODUCER_BATCH_BYTES)
        store = ObjectStore.from_settings(settings)
        stop = asyncio.Event()
        try:
            await producer.start()
            await asyncio.to_thread(store.ensure_bucket)
            app.state.pool = pool
            acknowledged = outbox.Acknowledged(settings.ingest_outbox_relay_after_s)
            queue = RecordingQueue(pool, producer, acknowledged)
            require_write = RequireScope(Scope.WRITE, remember_s=settings.ingest_cache_s)
            app.state.require_write = require_write
            app.state.intake = Intake(
                pool,
                producer,
                store,
                settings.max_image_bytes,
                queue,
                RecentDeployments(settings.ingest_cache_s),
                ModelVersionLabels(),
                settings.max_image_pixels,
            )
            raw = raw_consumer.RawHandler(
                pool, producer, store, settings.max_image_bytes, settings.max_image_pixels
            )
            consumers = [
                _consumer(
                    settings, raw_consumer.CONSUMER, Topic.PREDICTIONS_RAW, decode, raw, producer, stop
                ),
                _consumer(
                    settings,
                    persistence.CONSUMER,
                    Topic.PREDICTIONS,
                    persistence.decode_unrecorded,
                    persistence.PersistenceHandler(pool),
                    producer,
                    stop,
                ),
            ]
            tasks = [asyncio.create_task(consumer.run(stop)) for consumer in consumers]
            key_changes = asyncio.create_task(
                KeyChanges(settings, "ingest", [require_write], producer).run(stop)
            )
            recording = asyncio.create_task(queue.run())
            # Rows are due once their delay passed: rounds more often would find nothing new.
            relay = Relay(pool, producer, min(settings.ingest_outbox_relay_after_s, RELAY_INTERVAL_S))
            relaying = asyncio.create_task(relay.run())
            cleaning = asyncio.create_task(acknowledged.run(pool, stop))

            async def check() -> str | None:
                try:
                    await ping(pool)
                except Exception as exc:
                    return f"postgres: {exc!r}"
                stalled = [problem for c in consumers if (problem := c.progress.problem())]
                return "; ".join(stalled) or None

            state["ready"] = check
            yield
            # Requests are answered by now; the consumers finish their batch, the cleanup its round.
            recording.cancel()
            relaying.cancel()
            stop.set()
            await asyncio.wait([*tasks, cleaning, relaying, key_changes], timeout=10)
            for task in [*tasks, cleaning, key_changes]:
                task.cancel()
        finally:
            await producer.stop()
            await pool.close()

    app = create_app("cvloop ingest", ready, lifespan=lifespan, body_models=BODY_MODELS)

    @app.exception_handler(Refused)
    async def _refused(_: Request, exc: Refused) -> JSONResponse:
        return field_error(exc.status_code, exc.field, exc.message)

    app.include_router(router)
    return app
