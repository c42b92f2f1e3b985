"""The local backend: each run in its own folder under JOBS_WORK_DIR, staged in and out by the runner, its
command a subprocess in a sandbox (`sandbox`: scrubbed environment, its own OS user and no network when
the machine allows). A runner that died leaves markers a restarted one cleans up (`orphans`)."""

from __future__ import annotations

import shutil
from uuid import UUID

import asyncpg

from schemas.job_workspace import JobWorkspace
from services.common.storage import ObjectStore

from ...settings import PipelineSettings
from ..commands import local_command
from ..workspace.stage_in import stage_in
from ..workspace.stage_out import stage_out
from . import Exit, Launch, Log, orphans
from .process import run_process
from .sandbox import Sandbox


def _failure(step: str, exc: Exception) -> Exit:
    return Exit(False, f"{step} failed: {exc or type(exc).__name__}")


class LocalBackend:
    resumes_runs = False  # a run's subprocess died with the runner that started it, or is killed

    def __init__(self, settings: PipelineSettings, pool: asyncpg.Pool, store: ObjectStore) -> None:
        self.settings = settings
        self.pool = pool
        self.store = store
        self.work_dir = settings.jobs_work_dir
        self.sandbox = Sandbox.for_runner(settings)
        self.sandbox.make_work_dir(self.work_dir)

    def clean_orphans(self) -> list[UUID]:
        """Kill what a runner that died left running here and remove its workspaces."""
        return orphans.reap(self.work_dir)

    async def close(self) -> None:
        pass  # it holds nothing: the runner's pool and store are the runner's

    async def run(self, launch: Launch, log: Log) -> Exit:
        argv = local_command(launch.command, launch.processing_name, self.settings.jobs_local_pythons)
        job, run = launch.job, launch.run
        workspace = JobWorkspace(self.work_dir / str(run.id))
        shutil.rmtree(workspace.root, ignore_errors=True)  # a run is staged in once, from scratch
        orphans.record(self.work_dir, run.id)
        try:
            self.sandbox.make_workspace(workspace)
            try:
                await stage_in(self.pool, self.store, job, run, workspace, log)
                self.sandbox.hand_over(workspace)
            except Exception as exc:  # whatever stops it, the run fails with the reason
                return _failure("stage-in", exc)
            log(f"running {' '.join(argv)} (time limit {launch.timeout_s:g} s)")
            ended = await run_process(
                self.sandbox.argv(argv),
                cwd=workspace.root,
                env=self.sandbox.env(workspace, launch),
                timeout_s=launch.timeout_s,
                log=log,
                started=lambda pgid: orphans.record(self.work_dir, run.id, pgid),
                ended=lambda: orphans.kill_run(run.id),  # what escaped its process group
            )
            if not ended.succeeded:
                return ended
            try:
                await stage_out(self.pool, self.store, job.project_id, run.id, job.kind, workspace, log)
            except Exception as exc:
                return _failure("stage-out", exc)
            return ended
        finally:
            if not self.settings.jobs_keep_workspaces:
                shutil.rmtree(workspace.root, ignore_errors=True)
            orphans.clear(self.work_dir, run.id)
