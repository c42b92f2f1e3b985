"""The job runner's parts, started and stopped together: Postgres pool (schema migrated), object store, the
backend, the scheduler claiming runs, the `jobs` consumer waking it, and the outbox relay publishing
TrainingFinished. On start, runs left running by a runner that stopped are failed with the reason
(local subprocesses died with it) or followed again (Kubernetes Jobs went on): one runner per database
(the Kubernetes Deployment has one replica)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aiokafka import AIOKafkaConsumer

from schemas.codec import decode
from schemas.envelope import Event
from schemas.topics import ConsumerGroup, Topic
from services.common.db.pool import open_pool, ping
from services.common.db.repositories import jobs
from services.common.kafka.consumer import process, started_consumer
from services.common.kafka.producer import EventProducer
from services.common.kafka.supervised import SupervisedConsumer
from services.common.outbox import Relay, flush
from services.common.storage import ObjectStore

from ..settings import PipelineSettings
from .backends import Backend
from .backends.kubernetes import KubernetesBackend
from .backends.local import LocalBackend
from .execution import Executor
from .scheduler import Scheduler

logger = logging.getLogger(__name__)

CONSUMER_GROUP = ConsumerGroup.JOB_RUNNER
ORPHANED = "the job runner stopped while this run was running"
RELAY_INTERVAL_S = 5.0


class JobRunnerService:
    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.producer: EventProducer | None = None
        self.scheduler: Scheduler | None = None
        self.jobs_consumer: SupervisedConsumer[AIOKafkaConsumer] | None = None
        self.backend: Backend | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _backend(self, pool: asyncpg.Pool, store: ObjectStore) -> Backend:
        if self.settings.jobs_backend == "kubernetes":
            return KubernetesBackend.from_settings(self.settings)
        return LocalBackend(self.settings, pool, store)

    async def start(self) -> None:
        self.pool = pool = await open_pool(self.settings.database_url)
        store = ObjectStore.from_settings(self.settings)
        await asyncio.to_thread(store.ensure_bucket)
        self.producer = EventProducer.from_settings(self.settings)
        await self.producer.start()
        relay = Relay(pool, self.producer, RELAY_INTERVAL_S)
        self.backend = backend = self._backend(pool, store)
        executor = Executor(pool, store, backend, self.settings.jobs_timeout_s, relay.wake.set)
        self.scheduler = Scheduler(
            pool,
            executor.execute,
            max_concurrent=self.settings.jobs_max_concurrent,
            poll_s=self.settings.jobs_poll_s,
        )
        self.jobs_consumer = self._jobs_consumer(self.scheduler, self.producer)
        backend.clean_orphans()
        for job, run in await jobs.running_runs(pool):
            if backend.resumes_runs:
                logger.warning("following a run a stopped runner left", extra={"run_id": str(run.id)})
                self.scheduler.adopt(job, run)
            else:
                logger.warning("failing a run a stopped runner left", extra={"run_id": str(run.id)})
                await executor.fail(job, run, ORPHANED)
        self._tasks = [
            asyncio.create_task(self.scheduler.run()),
            asyncio.create_task(relay.run()),
            asyncio.create_task(self.jobs_consumer.run()),
        ]

    def _jobs_consumer(
        self, scheduler: Scheduler, producer: EventProducer
    ) -> SupervisedConsumer[AIOKafkaConsumer]:
        """JobRequested wakes the scheduler (the run it names is pending in Postgres already); after an
        outage the poll finds what was requested meanwhile."""

        async def wake(_: Event) -> None:
            scheduler.wake()

        async def consume(consumer: AIOKafkaConsumer) -> None:
            await process(consumer, decode, wake, producer, name=CONSUMER_GROUP, progress=supervised.progress)

        supervised = SupervisedConsumer(
            CONSUMER_GROUP, lambda: started_consumer(self.settings, CONSUMER_GROUP, Topic.JOBS.value), consume
        )
        return supervised

    async def stop(self) -> None:
        """Runs in progress are stopped and failed; their events are published before the producer goes."""
        tasks, self._tasks = self._tasks, []
        for task in reversed(tasks):  # the consumer first, the scheduler (and its runs) last
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        pool, producer, backend = self.pool, self.producer, self.backend
        self.pool = self.producer = self.scheduler = self.jobs_consumer = self.backend = None
        if backend is not None:
            await backend.close()
        if pool is not None and producer is not None:
            with contextlib.suppress(Exception):
                await flush(pool, producer)
        if producer is not None:
            await producer.stop()
        if pool is not None:
            await pool.close()

    async def ready(self) -> str | None:
        if self.pool is None or not self._tasks:
            return "the job runner is not started"
        if any(task.done() for task in self._tasks):
            return "a part of the job runner stopped"
        if self.jobs_consumer is None or not self.jobs_consumer.connected:
            return "the jobs consumer is not connected"
        if (stalled := self.jobs_consumer.progress.problem()) is not None:
            return stalled
        try:
            await ping(self.pool)
        except (OSError, asyncpg.PostgresError) as exc:
            return f"Postgres does not answer: {exc}"
        return None
