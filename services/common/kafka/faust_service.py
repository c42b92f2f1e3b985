"""What every faust-app service shares: its parts started and stopped together (Postgres pool, object
store, event producer, the tasks its stream needs beside it, and the faust app running the stream), its
readiness, and the guard that stops it when an agent fails outside its messages."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
import faust

from services.common.db.pool import open_pool, ping
from services.common.settings import Settings
from services.common.storage import ObjectStore

from .faust_app import create_app
from .producer import EventProducer
from .supervised import Progress, until_done

logger = logging.getLogger(__name__)

Agent = Callable[[faust.StreamT], Awaitable[None]]
StreamT = TypeVar("StreamT")
SettingsT = TypeVar("SettingsT", bound=Settings)

RETRY_DELAY_S = 0.5  # an agent's first pause after an outage; doubled while it lasts


class AgentGuard:
    """Agents ride out an outage in place: `until_done` retries a batch's effect, its events unacknowledged
    (faust acknowledges a taken batch once the agent moves past it, even when the agent raises, so an
    agent must never leave a batch it did not apply), while its progress says it is stalled. An agent
    that still fails stops; the service is then not ready and `on_failure` runs (the process stops)."""

    def __init__(self, app_id: str, on_failure: Callable[[BaseException], None]) -> None:
        self.app_id = app_id
        self.on_failure = on_failure
        self.failure: BaseException | None = None
        self.progress: dict[str, Progress] = {}

    async def until_done(self, agent: str, work: Callable[[], Awaitable[object]]) -> None:
        """Await `work` (which dead-letters its own messages at fault) until it succeeds."""
        progress = self.progress.get(agent)
        if progress is None:
            progress = self.progress[agent] = Progress(f"{self.app_id}/{agent}")
        await until_done(progress, work, RETRY_DELAY_S)

    def problem(self) -> str | None:
        """Why the stream is not ready: an agent stopped, or one cannot make progress."""
        if self.failure is not None:
            return f"stopped: {self.failure!r}"
        stalled = [problem for progress in self.progress.values() if (problem := progress.problem())]
        return "; ".join(stalled) or None

    def __call__(self, agent: Agent) -> Agent:
        @functools.wraps(agent)
        async def guarded(stream: faust.StreamT) -> None:
            try:
                await agent(stream)
            except Exception as exc:
                logger.exception("agent failed", extra={"app": self.app_id, "agent": agent.__name__})
                self.failure = exc
                self.on_failure(exc)
                raise

        return guarded


@dataclass(frozen=True)
class StreamParts:
    """The started parts a stream is built on."""

    app: faust.App
    pool: asyncpg.Pool
    store: ObjectStore
    producer: EventProducer
    guard: AgentGuard


class FaustService(ABC, Generic[SettingsT, StreamT]):
    """A faust app's service: subclasses name it and build its stream on the started parts."""

    app_id: str
    description: str  # what readiness names: "the pipeline stream"

    def __init__(
        self, settings: SettingsT, on_failure: Callable[[BaseException], None] = lambda _: None
    ) -> None:
        """`on_failure` runs when an agent stops on an error outside its messages."""
        self.settings = settings
        self.on_failure = on_failure
        self.pool: asyncpg.Pool | None = None
        self.producer: EventProducer | None = None
        self.app: faust.App | None = None
        self.guard: AgentGuard | None = None
        self.stream: StreamT | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _producer(self) -> EventProducer:
        return EventProducer.from_settings(self.settings)

    @abstractmethod
    def _attach(self, parts: StreamParts) -> tuple[StreamT, list[Coroutine[Any, Any, None]]]:
        """The stream, its agents on `parts.app` guarded by `parts.guard`, and what must run beside it."""

    async def start(self) -> None:
        self.pool = await open_pool(self.settings.database_url)
        store = ObjectStore.from_settings(self.settings)
        await asyncio.to_thread(store.ensure_bucket)
        self.producer = self._producer()
        await self.producer.start()
        self.app = create_app(self.app_id, self.settings)
        self.guard = AgentGuard(self.app_id, self.on_failure)
        self.stream, beside = self._attach(StreamParts(self.app, self.pool, store, self.producer, self.guard))
        self._tasks = [asyncio.create_task(work) for work in beside]
        await self.app.start()

    async def stop(self) -> None:
        app, tasks, producer, pool = self.app, self._tasks, self.producer, self.pool
        self.app = self.producer = self.pool = self.guard = self.stream = None
        self._tasks = []
        if app is not None:
            await app.stop()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if producer is not None:
            await producer.stop()
        if pool is not None:
            await pool.close()

    async def ready(self) -> str | None:
        """None once the stream runs and Postgres answers, else why not."""
        if self.app is None or self.pool is None or self.guard is None or not self.app.started:
            return f"{self.description} is not started"
        if (problem := self.guard.problem()) is not None:
            return f"{self.description}: {problem}"
        try:
            await ping(self.pool)
        except (OSError, asyncpg.PostgresError) as exc:
            return f"Postgres does not answer: {exc}"
        return None
