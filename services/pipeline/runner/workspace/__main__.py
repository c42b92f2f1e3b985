"""`python -m services.pipeline.runner.workspace stage-in|stage-out --run-id ID --dir PATH`: the workspace
steps of a Kubernetes Job's pod (deploy/k8s/jobs/job.yaml), with the platform's settings in the env.
`stage-out --on-sigterm --ready-file F` is the pod's sidecar: it writes F once it awaits SIGTERM, waits
until the pod stops it, after the job container ended, then stages out. A step that fails prints the
reason as its last line and exits 1."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from uuid import UUID

from schemas.job_workspace import JobWorkspace
from services.common.db.pool import create_pool
from services.common.db.repositories import jobs
from services.common.settings import Settings
from services.common.storage import ObjectStore

from .stage_in import stage_in
from .stage_out import stage_out


def _log(line: str) -> None:
    print(line, flush=True)


async def _until_sigterm(ready_file: Path | None) -> None:
    """Wait for SIGTERM; `ready_file` is written once it is awaited (the pod's startup probe for this
    sidecar looks for it, so the job container starts only when a SIGTERM would be caught)."""
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    if ready_file is not None:
        await asyncio.to_thread(ready_file.touch)
    await stopped.wait()


async def _step(step: str, run_id: UUID, root: Path, on_sigterm: bool, ready_file: Path | None) -> None:
    if on_sigterm:
        await _until_sigterm(ready_file)
    settings = Settings()  # Postgres and S3: the shared settings
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        found = await jobs.find_run(pool, run_id)
        if found is None:
            raise LookupError(f"run {run_id} does not exist")
        job, run = found
        store = ObjectStore.from_settings(settings)
        workspace = JobWorkspace(root)
        if step == "stage-in":
            await stage_in(pool, store, job, run, workspace, _log)
        else:
            await stage_out(pool, store, job.project_id, run.id, job.kind, workspace, _log)
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.pipeline.runner.workspace")
    parser.add_argument("step", choices=["stage-in", "stage-out"])
    parser.add_argument("--run-id", type=UUID, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="the workspace folder")
    parser.add_argument("--on-sigterm", action="store_true", help="wait for SIGTERM first (a sidecar)")
    parser.add_argument("--ready-file", type=Path, help="with --on-sigterm: written once SIGTERM is awaited")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_step(args.step, args.run_id, args.dir, args.on_sigterm, args.ready_file))
    except Exception as exc:
        print(exc, file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
