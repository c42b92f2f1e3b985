"""The control plane's FastAPI app: its resources opened at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from schemas.topics import Topic
from services.common.db.pool import open_pool, ping
from services.common.http import create_app
from services.common.kafka.producer import EventProducer
from services.common.outbox import Relay
from services.common.storage import ObjectStore

from . import errors, metrics
from .context import Context
from .review_backlog import ShownBacklog
from .routes import (
    deployments,
    experiments,
    jobs,
    monitoring,
    pipeline,
    predictions,
    projects,
    registry,
    review_queue,
)
from .settings import ApiSettings
from .web import pages

READY_TIMEOUT_S = 2.0


def build_app(settings: ApiSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(settings.database_url, max_size=settings.api_db_pool_size)
        store = ObjectStore.from_settings(settings)
        producer = EventProducer.from_settings(settings)
        try:
            await asyncio.to_thread(store.ensure_bucket)
            await producer.start()
            context = Context(settings=settings, pool=pool, store=store, producer=producer)
            app.state.pool = pool  # what services.common.auth reads
            app.state.context = context
            # Its first round sends what a previous process committed but could not publish.
            relay = asyncio.create_task(
                Relay(pool, producer, settings.api_outbox_retry_s, wake=context.outbox_wake).run()
            )
            backlog = asyncio.create_task(ShownBacklog().refresh_forever(pool))
            try:
                yield
            finally:
                for task in (relay, backlog):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            await producer.stop()
            await pool.close()

    async def ready() -> str | None:
        context: Context | None = getattr(app.state, "context", None)
        if context is None:
            return "starting"
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await ping(context.pool)
                await context.producer.producer.partitions_for(Topic.DEPLOYMENTS)
        except (TimeoutError, OSError) as exc:
            return f"postgres or kafka unreachable: {exc.__class__.__name__}"
        return None

    app = create_app(
        "cvloop control plane",
        ready,
        lifespan=lifespan,
        version="1",
        description="Registry, deployments, pipeline settings, review and submission, jobs (docs/api.md).",
    )
    errors.install(app)
    metrics.install(app)
    for module in (
        projects,
        registry,
        experiments,
        deployments,
        monitoring,
        pipeline,
        predictions,
        review_queue,
        jobs,
    ):
        app.include_router(module.router)
    pages.install(app)
    return app
