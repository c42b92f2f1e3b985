"""The local backend: each run in its own folder under JOBS_WORK_DIR, its command a subprocess of the
runner. The command gets the runner's environment without the platform's settings (a trainer brought by
a user sees no database password), the contract's variables, and the runner's Python first on PATH, so
`python -m ...` finds cvloop; reference jobs get the runner's whole environment and its settings."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import asyncpg

from schemas.job_workspace import JobWorkspace
from services.common.settings import env_name, settings_env
from services.common.storage import ObjectStore

from ...settings import PipelineSettings
from ..commands import local_command
from ..workspace.stage_in import stage_in
from ..workspace.stage_out import stage_out
from . import Exit, Launch, Log
from .process import run_process

SETTINGS_ENV = frozenset(env_name(field) for field in PipelineSettings.model_fields.values())


def command_env(settings: PipelineSettings, workspace: JobWorkspace, launch: Launch) -> dict[str, str]:
    if (
        launch.command.platform_env
    ):  # the runner's whole environment: a reference job reads scoring's settings
        env = dict(os.environ) | settings_env(settings)
    else:
        env = {name: value for name, value in os.environ.items() if name not in SETTINGS_ENV}
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
    return env | workspace.job_env(launch.job.id, launch.run.id, launch.job.kind)


def _failure(step: str, exc: Exception) -> Exit:
    return Exit(False, f"{step} failed: {exc or type(exc).__name__}")


class LocalBackend:
    resumes_runs = False  # a run's subprocess died with the runner that started it

    def __init__(self, settings: PipelineSettings, pool: asyncpg.Pool, store: ObjectStore) -> None:
        self.settings = settings
        self.pool = pool
        self.store = store

    async def run(self, launch: Launch, log: Log) -> Exit:
        argv = local_command(launch.command, launch.processing_name)
        workspace = JobWorkspace(self.settings.jobs_work_dir / str(launch.run.id))
        shutil.rmtree(workspace.root, ignore_errors=True)  # a run is staged in once, from scratch
        workspace.root.mkdir(parents=True)
        job, run = launch.job, launch.run
        try:
            try:
                await stage_in(self.pool, self.store, job, run, workspace, log)
            except Exception as exc:  # whatever stops it, the run fails with the reason
                return _failure("stage-in", exc)
            log(f"running {' '.join(argv)} (time limit {launch.timeout_s:g} s)")
            ended = await run_process(
                argv,
                cwd=workspace.root,
                env=command_env(self.settings, workspace, launch),
                timeout_s=launch.timeout_s,
                log=log,
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
