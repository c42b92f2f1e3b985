"""Postgres is the truth, a JobRequested message a wake-up: the scheduler claims pending runs whenever it is
woken, every `poll_s`, and whenever a run of its own ends, up to `max_concurrent` runs at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from services.common.db.repositories import jobs
from services.common.domain.jobs import Job, JobRun

logger = logging.getLogger(__name__)

RunOne = Callable[[Job, JobRun], Awaitable[object]]


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, run_one: RunOne, *, max_concurrent: int, poll_s: float) -> None:
        self.pool = pool
        self.run_one = run_one
        self.max_concurrent = max_concurrent
        self.poll_s = poll_s
        self.active: set[asyncio.Task[object]] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Claim and start runs until cancelled; then the runs it started are cancelled (and failed)."""
        try:
            while True:
                self._wake.clear()
                await self._claim()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await self._wake.wait()
        finally:
            for task in self.active:
                task.cancel()
            if self.active:
                await asyncio.wait(self.active)

    async def _claim(self) -> None:
        free = self.max_concurrent - len(self.active)
        if free <= 0:
            return
        try:
            claimed = await jobs.claim_pending(self.pool, free)
        except (OSError, asyncpg.PostgresError):
            logger.warning("claiming pending runs failed; trying again later", exc_info=True)
            return
        for job, run in claimed:
            self.adopt(job, run)

    def adopt(self, job: Job, run: JobRun) -> None:
        """Run a run that is running already: one this scheduler claimed, or one a stopped runner left."""
        task = asyncio.create_task(self.run_one(job, run), name=f"job-run-{run.id}")
        self.active.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[object]) -> None:
        self.active.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a job run ended with an error", exc_info=task.exception())
        self.wake()  # a slot is free
