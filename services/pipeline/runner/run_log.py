"""A run's log lines on their way to job_logs: numbered in arrival order and written in small batches
while the run goes on, so `GET /v1/jobs/{id}/logs` and `cvloop jobs logs -f` show them as they come."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

import asyncpg

from services.common.db.repositories import jobs
from services.common.db.repositories.base import Db

logger = logging.getLogger(__name__)

FLUSH_S = 0.5
MAX_LINE = 8192  # characters kept of one line


class RunLog:
    def __init__(self, pool: asyncpg.Pool, project_id: UUID, run_id: UUID, flush_s: float = FLUSH_S) -> None:
        self.pool = pool
        self.project_id = project_id
        self.run_id = run_id
        self.flush_s = flush_s
        self._next = 0
        self._pending: list[tuple[int, str]] = []
        self._task: asyncio.Task[None] | None = None

    def __call__(self, line: str) -> None:
        """Add a line (without its line break); written within `flush_s`."""
        self._pending.append((self._next, line.rstrip("\r\n")[:MAX_LINE]))
        self._next += 1
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await jobs.append_logs(self.pool, self.project_id, self.run_id, batch)
        except (OSError, asyncpg.PostgresError):
            # Kept for the next round: a line is stored once under its number, whenever it gets there.
            self._pending = batch + self._pending
            logger.warning("job log lines not written yet", extra={"run_id": str(self.run_id)}, exc_info=True)

    async def write(self, db: Db, line: str) -> None:
        """Write a line at once, on `db` (a transaction finishing the run: a follower that sees the run
        finished has seen its last line too). Call it after `close`."""
        await jobs.append_logs(db, self.project_id, self.run_id, [(self._next, line[:MAX_LINE])])
        self._next += 1

    async def close(self) -> None:
        """Write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._flush()
