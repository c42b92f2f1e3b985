"""The pipeline's parts, started and stopped together: Postgres pool (schema migrated), object store,
event producer, the outbox relay for the events its changes commit, and the faust app running the
stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import faust

from services.common.db.pool import open_pool
from services.common.kafka.faust_app import create_app
from services.common.kafka.producer import EventProducer
from services.common.outbox import Relay
from services.common.settings import Settings
from services.common.storage import ObjectStore

from .stream import APP_ID, PipelineStream


class PipelineService:
    def __init__(
        self, settings: Settings, on_failure: Callable[[BaseException], None] = lambda _: None
    ) -> None:
        """`on_failure` runs when an agent stops on an error outside its messages."""
        self.settings = settings
        self.on_failure = on_failure
        self.pool: asyncpg.Pool | None = None
        self.producer: EventProducer | None = None
        self.relay: asyncio.Task[None] | None = None
        self.app: faust.App | None = None
        self.stream: PipelineStream | None = None

    async def start(self) -> None:
        self.pool = await open_pool(self.settings.database_url)
        store = ObjectStore.from_settings(self.settings)
        await asyncio.to_thread(store.ensure_bucket)
        self.producer = EventProducer.from_settings(self.settings)
        await self.producer.start()
        relay = Relay(self.pool, self.producer, self.settings.pipeline_outbox_retry_s)
        self.relay = asyncio.create_task(relay.run(), name="pipeline-outbox-relay")
        # faust keeps its table folder under the state folder rather than the working directory.
        self.app = create_app(APP_ID, self.settings, datadir=str(self.settings.state_path / APP_ID))
        self.stream = PipelineStream(self.app, self.pool, store, self.producer, relay.wake, self.on_failure)
        await self.app.start()

    async def stop(self) -> None:
        app, relay, producer, pool = self.app, self.relay, self.producer, self.pool
        self.app = self.relay = self.producer = self.pool = self.stream = None
        if app is not None:
            await app.stop()
        if relay is not None:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
        if producer is not None:
            await producer.stop()
        if pool is not None:
            await pool.close()

    async def ready(self) -> str | None:
        """None once the stream runs and Postgres answers, else why not."""
        if self.app is None or self.pool is None or self.stream is None or not self.app.started:
            return "the pipeline stream is not started"
        if self.stream.failure is not None:
            return f"the pipeline stream stopped: {self.stream.failure!r}"
        try:
            await self.pool.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError) as exc:
            return f"Postgres does not answer: {exc}"
        return None
