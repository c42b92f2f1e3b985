"""One claimed run from start to finish: what to run, the backend running it, the finish, the metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from schemas.events import JobKind
from schemas.vocabulary import ExperimentStatus
from services.common.db.repositories import experiments, processings, registry
from services.common.domain.jobs import Job, JobRun
from services.common.domain.registry import ModelVersion
from services.common.storage import ObjectStore

from . import metrics
from .backends import Backend, Exit, Launch
from .commands import JobRefused, job_command, timeout_of
from .finish import finish
from .run_log import RunLog

logger = logging.getLogger(__name__)

STOPPED = "the job runner stopped during the run"


class Executor:
    def __init__(
        self,
        pool: asyncpg.Pool,
        store: ObjectStore,
        backend: Backend,
        default_timeout_s: float,
        on_finished: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_finished` runs after a finish committed (the relay's wake: a TrainingFinished may wait)."""
        self.pool = pool
        self.store = store
        self.backend = backend
        self.default_timeout_s = default_timeout_s
        self.on_finished = on_finished

    async def execute(self, job: Job, run: JobRun) -> JobRun:
        """Run a claimed (running) run and finish it; cancelled, it stops the command and fails the run."""
        log = RunLog(self.pool, job.project_id, run.id)
        active = metrics.ACTIVE.labels(job.kind.value)
        active.inc()
        try:
            try:
                ended = await self._run(job, run, log)
            except asyncio.CancelledError:
                await self._finish(job, run, Exit(False, STOPPED), log)
                raise
            except Exception as exc:  # a fault of the runner's own: the run fails with it rather than hangs
                logger.exception("job run failed in the runner", extra={"run_id": str(run.id)})
                ended = Exit(False, f"the job runner failed: {exc!r}")
            return await self._finish(job, run, ended, log)
        finally:
            active.dec()

    async def fail(self, job: Job, run: JobRun, reason: str) -> JobRun:
        """Fail a run without running it (one a stopped runner left running)."""
        return await self._finish(job, run, Exit(False, reason), RunLog(self.pool, job.project_id, run.id))

    async def _run(self, job: Job, run: JobRun, log: RunLog) -> Exit:
        try:
            launch = await self._launch(job, run)
        except JobRefused as exc:
            return Exit(False, str(exc))
        log(f"run {run.attempt} of {job.kind.value} job {job.id}")
        try:
            return await self.backend.run(launch, log)
        except JobRefused as exc:
            return Exit(False, str(exc))

    async def _launch(self, job: Job, run: JobRun) -> Launch:
        base: ModelVersion | None = None
        processing = None
        if job.kind is JobKind.TRAINING:
            experiment = await experiments.get_experiment(self.pool, job.project_id, job.target_id)
            if experiment is None:
                raise JobRefused(f"experiment {job.target_id} does not exist")
            await experiments.set_status(self.pool, job.project_id, job.target_id, ExperimentStatus.RUNNING)
            if experiment.base_model_version_id is not None:
                base = await registry.get_model_version(
                    self.pool, job.project_id, experiment.base_model_version_id
                )
        elif job.kind is JobKind.PROCESSING and job.processing_id is not None:
            processing = await processings.get_processing(self.pool, job.project_id, job.processing_id)
        return Launch(
            job=job,
            run=run,
            command=job_command(job.kind, base=base, processing=processing),
            processing_name=processing.name if processing else None,
            timeout_s=timeout_of(job.parameters, self.default_timeout_s),
        )

    async def _finish(self, job: Job, run: JobRun, ended: Exit, log: RunLog) -> JobRun:
        try:
            finished = await finish(self.pool, self.store, job, run, ended, log)
        finally:
            await log.close()
        self.on_finished()
        kind = job.kind.value
        metrics.RUNS.labels(kind, finished.status.value).inc()
        if finished.started_at and finished.finished_at:
            metrics.DURATION.labels(kind).observe(
                (finished.finished_at - finished.started_at).total_seconds()
            )
        return finished
