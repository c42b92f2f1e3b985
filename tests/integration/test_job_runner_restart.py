"""The job runner survives its jobs: a runner process killed with SIGKILL while a job runs, restarted at
once, binds its port (the job did not inherit it), kills the job it left behind (its process group),
removes its workspace, and fails its run with the reason. A real runner process, the real Postgres,
broker and S3; no in-process runner in this module (one runner per database)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from uuid import uuid4

import asyncpg
import httpx
import pytest

from cvloop.demo.polling import until
from schemas.events import JobKind
from schemas.object_keys import ObjectKind
from schemas.predictions import DetectionType
from schemas.topics import Topic
from schemas.vocabulary import RunStatus, TargetType
from services.common.db.repositories import jobs, processings, projects, registry
from services.common.domain.job_events import job_requested
from services.common.domain.registry import ModelFile, NewModelVersion
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings, settings_env
from services.common.storage import ObjectStore
from services.pipeline.runner.backends import orphans
from services.pipeline.runner.service import ORPHANED
from tests.job_scripts import ATTACK_SCRIPT


@pytest.fixture(scope="module")
def module_settings(job_runner_settings: Settings) -> Settings:
    return job_runner_settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RunnerProcess:
    """`python -m services.pipeline.runner` with the test stack's settings, on a port of its own."""

    def __init__(self, settings: Settings) -> None:
        self.port = _free_port()
        self.env = os.environ | settings_env(settings) | {"CVLOOP_HTTP_PORT": str(self.port)}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "services.pipeline.runner"], env=self.env)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no clean-up of its own
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)

    async def healthy(self) -> bool | None:
        """True once it answers /healthz (None until then: what `until` waits on)."""
        try:
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
        except httpx.TransportError:
            return None
        return True if answer.is_success else None


@pytest.fixture
def runner(job_runner_settings: Settings) -> Iterator[RunnerProcess]:
    process = RunnerProcess(job_runner_settings)
    try:
        yield process
    finally:
        process.stop()


def _alive(pgid: int) -> bool:
    return bool(orphans.group_members(pgid))


async def test_a_runner_killed_during_a_job_restarts_at_once_and_cleans_up_after_it(
    pool: asyncpg.Pool,
    producer: EventProducer,
    store: ObjectStore,
    job_runner_settings: Settings,
    runner: RunnerProcess,
) -> None:
    scripts = job_runner_settings.state_path / "job-scripts"
    scripts.mkdir(exist_ok=True)
    script = scripts / "attack.py"
    script.write_text(ATTACK_SCRIPT)
    project = await projects.create_project(pool, f"restart-{uuid4().hex[:8]}")
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.MODELS, b"model bytes", "application/onnx")
    model = await registry.create_model(pool, project.id, "m")
    file = ModelFile(name="model.onnx", object_key=stored.key, sha256=stored.sha256, size_bytes=stored.size)
    version = await registry.create_model_version(
        pool,
        project.id,
        model.id,
        NewModelVersion(version="v1", detection_type=DetectionType.CLASSIFICATION, files=[file]),
    )
    processing = await processings.create_processing(
        pool, project.id, "sleeper", command=["python", str(script)]
    )
    runner.start()
    await until(runner.healthy, "the runner to answer")
    parameters = {
        "mode": "sleep",
        "postgres_port": job_runner_settings.postgres_port,
        "password_file": str(job_runner_settings.local_database_password_file),
    }
    job, run, _ = await jobs.create_job(
        pool,
        project.id,
        JobKind.PROCESSING,
        target_type=TargetType.MODEL_VERSION,
        target_id=version.id,
        parameters=parameters,
        processing_id=processing.id,
    )
    await producer.publish(Topic.JOBS, job_requested(job, run))

    async def sleeping() -> list[str] | None:
        lines = [line.line for line in await jobs.read_logs(pool, project.id, run.id)]
        return lines if "sleeping" in lines else None

    lines = await until(sleeping, "the job to sleep")
    assert "sockets: " in lines  # the runner's listening socket and connections stayed with it
    (started,) = [line.split() for line in lines if line.startswith("pid ")]
    pgid = int(started[3])
    workspace = job_runner_settings.jobs_work_dir / str(run.id)
    assert workspace.is_dir()

    runner.kill()
    assert _alive(pgid)  # the job outlived its runner: an orphan
    runner.start()
    await until(runner.healthy, "the restarted runner to answer")  # the port was free

    async def orphan_gone() -> bool | None:  # SIGKILL is delivered at once, the exit takes its moment
        return True if not _alive(pgid) else None

    await until(orphan_gone, "the orphan to be killed")
    assert not workspace.exists()
    assert not orphans.marker(job_runner_settings.jobs_work_dir, run.id).exists()
    found = await jobs.get_run(pool, project.id, run.id)
    assert found is not None
    assert (found[1].status, found[1].reason) == (RunStatus.FAILED, ORPHANED)
