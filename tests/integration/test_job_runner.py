"""The job runner through the real Postgres, broker and S3, on its local backend: a training job whose
entrypoint is a small trainer following the workspace contract (tests/job_scripts.py), failing and
timed-out commands, logs while a run goes on, re-runs, a restart with a run left running, a processing
making a new model version, and a reference job making a deployment's reference ready."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from pydantic import BaseModel, ConfigDict

from cvloop.demo.digits import digit_images, png
from cvloop.demo.polling import WAIT_S, until
from cvloop.demo.scoring import (
    Deployment,
    add_image,
    add_unreadable_image,
    classification_deployment,
)
from cvloop.settings import every_env_name
from cvloop.trainers.workspace import Workspace as TrainerWorkspace
from schemas.events import JobKind, TrainingFinished, TrainingStatus
from schemas.job_workspace import JobFile
from schemas.model_io import ModelIO
from schemas.object_keys import ObjectKind
from schemas.predictions import ClassificationPrediction, DetectionType
from schemas.topics import Topic
from schemas.vocabulary import RunStatus, TargetType
from services.common.db.repositories import deployments, experiments, jobs, processings, projects, registry
from services.common.domain.job_events import job_requested
from services.common.domain.jobs import Job, JobRun
from services.common.domain.registry import ModelFile, ModelVersion, NewModelVersion
from services.common.kafka.producer import EventProducer
from services.common.os_users import grant_search
from services.common.settings import Settings, settings_env
from services.common.storage import ObjectStore
from services.pipeline.runner.backends import Exit, orphans
from services.pipeline.runner.finish import finish
from services.pipeline.runner.run_log import RunLog
from services.pipeline.runner.service import ORPHANED, JobRunnerService
from services.pipeline.runner.workspace.stage_in import stage_in
from tests.integration.pipeline_fixtures import events_of
from tests.job_scripts import ATTACK_SCRIPT, PROCESSING_SCRIPT, TRAINER_SCRIPT

BASE_MODEL = b"\x08\x07 stand-in ONNX bytes of the base model"
LABELS = ["zero", "one", "two"]


class Parameters(BaseModel):
    """What a trainer reading parameters.json expects: no field the runner keeps for itself."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float
    epochs: int


@dataclass(frozen=True)
class Registry:
    """A project with a model version (files, labelmap, IO) and a training dataset version."""

    project_id: UUID
    base: ModelVersion
    dataset_version_id: UUID


@pytest.fixture(scope="module")
def module_settings(job_runner_settings: Settings) -> Settings:
    return job_runner_settings


@pytest.fixture(scope="module")
def scripts(job_runner_settings: Settings) -> dict[str, Path]:
    """Scripts the jobs' OS user (cvloop-job, when the tests run as root) may read: in the test stack's
    state folder (pytest's own temporary root is made 0700 again by every pytest starting meanwhile)."""
    folder = job_runner_settings.state_path / "job-scripts"
    folder.mkdir(exist_ok=True)
    written = {"trainer": folder / "trainer.py", "processing": folder / "convert.py"}
    written["trainer"].write_text(TRAINER_SCRIPT)
    written["processing"].write_text(PROCESSING_SCRIPT)
    written["attack"] = folder / "attack.py"
    written["attack"].write_text(ATTACK_SCRIPT)
    grant_search(folder)
    folder.chmod(0o755)
    return written


@pytest.fixture(scope="module")
async def reg(
    job_runner: JobRunnerService,
    pool: asyncpg.Pool,
    store: ObjectStore,
    job_runner_settings: Settings,
    scripts: dict[str, Path],
) -> Registry:
    project = await projects.create_project(pool, f"jobs-{uuid4().hex[:8]}")
    labelmap = await registry.create_labelmap(pool, project.id, "digits", LABELS)
    dataset = await registry.create_dataset(pool, project.id, "digits")
    version = await registry.create_dataset_version(
        pool, project.id, dataset.id, "v1", DetectionType.CLASSIFICATION, labelmap_id=labelmap.id
    )
    for digit, pixels in enumerate(digit_images()[:3]):
        asset = await add_image(pool, store, job_runner_settings, project.id, version.id, png(pixels))
        annotation = ClassificationPrediction(classes=[LABELS[digit]], scores=[1.0])
        await registry.add_annotation(pool, project.id, asset.id, annotation.model_dump(mode="json"))
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.MODELS, BASE_MODEL, "application/onnx")
    model = await registry.create_model(pool, project.id, "digits")
    base = await registry.create_model_version(
        pool,
        project.id,
        model.id,
        NewModelVersion(
            version="v1",
            detection_type=DetectionType.CLASSIFICATION,
            labelmap_id=labelmap.id,
            training_parameters={"epochs": 3},
            training_entrypoint=f"python {scripts['trainer']}",
            io=ModelIO(width=32, height=32),
            files=[
                ModelFile(
                    name="model.onnx", object_key=stored.key, sha256=stored.sha256, size_bytes=stored.size
                )
            ],
            dataset_versions={"train": version.id},
        ),
    )
    return Registry(project.id, base, version.id)


async def _request(pool: asyncpg.Pool, producer: EventProducer, job: Job, run: JobRun) -> None:
    """What the api and the pipeline publish after creating a run: the runner's wake-up."""
    await producer.publish(Topic.JOBS, job_requested(job, run))


async def _training(
    pool: asyncpg.Pool, producer: EventProducer, reg: Registry, parameters: dict[str, Any]
) -> tuple[Job, JobRun, str]:
    """An experiment on the base version and its training job, as the pipeline makes them."""
    deployment_id = uuid4()  # TrainingFinished carries the deployment named in the request id
    request_id = f"{deployment_id}:1"
    experiment = await experiments.create_experiment(
        pool,
        reg.project_id,
        f"experiment-{uuid4().hex[:8]}",
        base_model_version_id=reg.base.id,
        parameters=parameters,
        dataset_versions={"train": reg.dataset_version_id},
    )
    job, run, _ = await jobs.create_job(
        pool,
        reg.project_id,
        JobKind.TRAINING,
        target_type=TargetType.EXPERIMENT,
        target_id=experiment.id,
        parameters=parameters,
        request_id=request_id,
    )
    await _request(pool, producer, job, run)
    return job, run, request_id


async def _finished(pool: asyncpg.Pool, project_id: UUID, run_id: UUID) -> JobRun:
    async def finished() -> JobRun | None:
        found = await jobs.get_run(pool, project_id, run_id)
        assert found is not None
        return found[1] if found[1].status in (RunStatus.SUCCEEDED, RunStatus.FAILED) else None

    return await until(finished, f"run {run_id} to finish")


async def _log_lines(pool: asyncpg.Pool, project_id: UUID, run_id: UUID) -> list[str]:
    return [line.line for line in await jobs.read_logs(pool, project_id, run_id)]


async def _training_finished(settings: Settings, request_id: str, count: int) -> list[TrainingFinished]:
    """The request's TrainingFinished events on `training`, once `count` came (the relay publishes them
    after the run's row, later on a loaded machine); each read goes to the topic's end, so a duplicate
    would show."""
    deployment_id = UUID(request_id.split(":")[0])

    async def arrived() -> list[TrainingFinished] | None:
        found = [
            event
            for event in await events_of(settings, Topic.TRAINING, deployment_id)
            if isinstance(event, TrainingFinished) and event.request_id == request_id
        ]
        return found if len(found) >= count else None

    return await until(arrived, f"{count} TrainingFinished of {request_id}")


async def test_a_training_run_stages_in_trains_and_stages_out_its_artifacts(
    pool: asyncpg.Pool,
    producer: EventProducer,
    store: ObjectStore,
    reg: Registry,
    job_runner_settings: Settings,
) -> None:
    job, run, request_id = await _training(pool, producer, reg, {"learning_rate": 0.01})
    finished = await _finished(pool, reg.project_id, run.id)
    lines = await _log_lines(pool, reg.project_id, run.id)
    assert finished.status is RunStatus.SUCCEEDED, (finished.reason, lines)
    assert finished.started_at is not None and finished.finished_at is not None
    assert finished.finished_at >= finished.started_at
    # The trainer saw the contract's workspace: job, parameters, base model, dataset with annotations.
    assert "trainer: job training, run 1, learning_rate 0.01" in lines
    assert f"trainer: base model v1 (classification), labels zero,one,two, {len(BASE_MODEL)} bytes" in lines
    assert "trainer: train: 3 assets, 3 images, annotated zero,one,two" in lines
    assert "metrics: accuracy_before=0.5, accuracy_after=0.75" in lines
    experiment = await experiments.get_experiment(pool, reg.project_id, job.target_id)
    assert experiment is not None and experiment.status == "succeeded" and experiment.finished_at
    artifacts = {a.name: a for a in experiment.artifacts}
    assert set(artifacts) == {"model.onnx", "labels.json", "metrics.json", "logs/epochs.txt"}
    model = await asyncio.to_thread(store.get_bytes, artifacts["model.onnx"].object_key)
    assert model == BASE_MODEL + b" fine-tuned"
    labels = await asyncio.to_thread(store.get_bytes, artifacts["labels.json"].object_key)
    assert json.loads(labels) == LABELS
    (event,) = await _training_finished(job_runner_settings, request_id, 1)
    assert event.status is TrainingStatus.SUCCEEDED and event.reason is None
    assert (event.experiment_id, event.job_run_id) == (job.target_id, run.id)
    assert event.deployment_id == UUID(request_id.split(":")[0])


async def test_a_failing_command_fails_the_run_and_the_experiment_with_its_reason(
    pool: asyncpg.Pool, producer: EventProducer, reg: Registry, job_runner_settings: Settings
) -> None:
    job, run, request_id = await _training(pool, producer, reg, {"mode": "fail"})
    finished = await _finished(pool, reg.project_id, run.id)
    assert finished.status is RunStatus.FAILED
    assert finished.reason == "exit code 3: ValueError: learning rate missing"
    lines = await _log_lines(pool, reg.project_id, run.id)
    assert lines[-1] == f"failed: {finished.reason}"
    experiment = await experiments.get_experiment(pool, reg.project_id, job.target_id)
    assert experiment is not None and experiment.status == "failed" and experiment.artifacts == []
    (event,) = await _training_finished(job_runner_settings, request_id, 1)
    assert event.status is TrainingStatus.FAILED and event.reason == finished.reason

    # A re-run is a new run of the same job, with its own log.
    again = await jobs.rerun(pool, reg.project_id, job.id)
    await _request(pool, producer, job, again)
    second = await _finished(pool, reg.project_id, again.id)
    assert (second.attempt, second.status, second.reason) == (2, RunStatus.FAILED, finished.reason)
    assert [r.id for r in await jobs.list_runs(pool, reg.project_id, job.id)] == [run.id, again.id]
    assert (await _log_lines(pool, reg.project_id, again.id))[0] == f"run 2 of training job {job.id}"
    events = await _training_finished(job_runner_settings, request_id, 2)
    assert [e.job_run_id for e in events] == [run.id, again.id]


async def test_a_run_past_its_time_limit_is_stopped_and_failed(
    pool: asyncpg.Pool, producer: EventProducer, reg: Registry
) -> None:
    _, run, _ = await _training(pool, producer, reg, {"mode": "sleep", "timeout_s": 5})
    finished = await _finished(pool, reg.project_id, run.id)
    assert (finished.status, finished.reason) == (RunStatus.FAILED, "timed out after 5 s")
    assert "trainer: sleeping" in await _log_lines(pool, reg.project_id, run.id)


async def test_a_training_that_writes_nothing_fails(
    pool: asyncpg.Pool, producer: EventProducer, reg: Registry
) -> None:
    job, run, _ = await _training(pool, producer, reg, {"mode": "empty"})
    finished = await _finished(pool, reg.project_id, run.id)
    assert (finished.status, finished.reason) == (RunStatus.FAILED, "the training wrote no files to outputs/")
    experiment = await experiments.get_experiment(pool, reg.project_id, job.target_id)
    assert experiment is not None and experiment.status == "failed"


async def test_log_lines_are_readable_while_the_run_goes_on(
    pool: asyncpg.Pool, producer: EventProducer, reg: Registry
) -> None:
    _, run, _ = await _training(pool, producer, reg, {"mode": "slow"})
    for _ in range(int(WAIT_S / 0.1)):
        lines = await _log_lines(pool, reg.project_id, run.id)
        found = await jobs.get_run(pool, reg.project_id, run.id)
        assert found is not None
        if "trainer: epoch 1" in lines:
            assert found[1].status is RunStatus.RUNNING  # seen before the run ended
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("no epoch line while the run was going on")
    finished = await _finished(pool, reg.project_id, run.id)
    assert finished.status is RunStatus.SUCCEEDED
    lines = await _log_lines(pool, reg.project_id, run.id)
    assert [line for line in lines if line.startswith("trainer: epoch")] == [
        f"trainer: epoch {i}" for i in range(1, 11)
    ]


async def test_a_restarted_runner_fails_the_run_a_stopped_runner_left_running(
    pool: asyncpg.Pool, job_runner: JobRunnerService, reg: Registry
) -> None:
    await job_runner.stop()
    try:
        # What a runner that died mid-run leaves: the run marked running, nobody running it.
        experiment = await experiments.create_experiment(
            pool, reg.project_id, f"orphan-{uuid4().hex[:8]}", base_model_version_id=reg.base.id
        )
        _, run, _ = await jobs.create_job(
            pool, reg.project_id, JobKind.TRAINING, target_type=TargetType.EXPERIMENT, target_id=experiment.id
        )
        assert (await jobs.claim_pending(pool, 100))[0][1].id == run.id
    finally:
        await job_runner.start()
    finished = await _finished(pool, reg.project_id, run.id)
    assert (finished.status, finished.reason) == (RunStatus.FAILED, ORPHANED)
    again = await experiments.get_experiment(pool, reg.project_id, experiment.id)
    assert again is not None and again.status == "failed"


async def test_a_processing_that_writes_outputs_makes_a_new_model_version(
    pool: asyncpg.Pool, producer: EventProducer, store: ObjectStore, reg: Registry, scripts: dict[str, Path]
) -> None:
    processing = await processings.create_processing(
        pool,
        reg.project_id,
        "to-fp16",
        command=["python", str(scripts["processing"]), "--suffix", "fp16"],
        parameters_schema={"properties": {"scale": {"type": "number"}}},
    )
    job, run, _ = await jobs.create_job(
        pool,
        reg.project_id,
        JobKind.PROCESSING,
        target_type=TargetType.MODEL_VERSION,
        target_id=reg.base.id,
        parameters={"scale": 0.5},
        processing_id=processing.id,
    )
    await _request(pool, producer, job, run)
    finished = await _finished(pool, reg.project_id, run.id)
    lines = await _log_lines(pool, reg.project_id, run.id)
    assert finished.status is RunStatus.SUCCEEDED, (finished.reason, lines)
    versions = {
        v.version: v for v in await registry.list_model_versions(pool, reg.project_id, reg.base.model_id)
    }
    made = versions["v1-to-fp16"]
    assert f"created model version v1-to-fp16 ({made.id}) of model {reg.base.model_id}" in lines
    inherited = ("detection_type", "labelmap_id", "io", "training_parameters", "dataset_versions")
    assert {f: getattr(made, f) for f in inherited} == {f: getattr(reg.base, f) for f in inherited}
    assert [f.name for f in made.files] == ["model.onnx"]
    converted = await asyncio.to_thread(store.get_bytes, made.files[0].object_key)
    assert converted == BASE_MODEL + b" fp16 scale=0.5"


async def _attack(
    pool: asyncpg.Pool,
    producer: EventProducer,
    reg: Registry,
    scripts: dict[str, Path],
    settings: Settings,
    mode: str | None = None,
) -> tuple[JobRun, list[str]]:
    """Project A's processing running ATTACK_SCRIPT on A's model version, run to its end."""
    processing = await processings.create_processing(
        pool, reg.project_id, f"attack-{uuid4().hex[:6]}", command=["python", str(scripts["attack"])]
    )
    parameters = {
        "postgres_port": settings.postgres_port,
        "password_file": str(settings.local_database_password_file),
        "mode": mode,
    }
    job, run, _ = await jobs.create_job(
        pool,
        reg.project_id,
        JobKind.PROCESSING,
        target_type=TargetType.MODEL_VERSION,
        target_id=reg.base.id,
        parameters=parameters,
        processing_id=processing.id,
    )
    await _request(pool, producer, job, run)
    finished = await _finished(pool, reg.project_id, run.id)
    return finished, await _log_lines(pool, reg.project_id, run.id)


async def test_a_processing_finds_no_credentials_and_cannot_reach_the_platforms_postgres(
    pool: asyncpg.Pool,
    producer: EventProducer,
    reg: Registry,
    scripts: dict[str, Path],
    job_runner_settings: Settings,
) -> None:
    other = await projects.create_project(pool, f"other-tenant-{uuid4().hex[:8]}")
    finished, lines = await _attack(pool, producer, reg, scripts, job_runner_settings)
    assert finished.status is RunStatus.SUCCEEDED, (finished.reason, lines)
    (env,) = [line.removeprefix("env: ").split(",") for line in lines if line.startswith("env: ")]
    contract = {"CVLOOP_JOB_DIR", "CVLOOP_JOB_KIND", "CVLOOP_JOB_ID", "CVLOOP_RUN_ID"}
    assert (
        contract <= set(env) <= contract | {"PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ"}
    ), env
    assert not set(env) & every_env_name()  # no platform setting at all
    assert "sockets: " in lines  # not one socket of the runner's
    password = job_runner_settings.local_database_password_file.read_text().strip()
    text = "\n".join(lines)
    assert password not in text
    psql = [line for line in lines if line.startswith("psql exit ")]
    assert psql and all(line != "psql exit 0" for line in psql), lines
    assert other.name not in text and "api_keys=" not in text
    (workspace,) = [line for line in lines if line.startswith("workspace: ")]
    assert workspace.startswith("workspace: 0o700 owner ")  # a private folder, the job's own
    assert workspace.split()[3] == workspace.split()[5], workspace  # "workspace: MODE owner UID me UID"
    if os.geteuid() == 0:  # as cvloop-job: neither the password file nor the other workspaces are readable
        assert "password file: PermissionError" in lines
        assert "other workspaces: PermissionError" in lines
        assert workspace.split()[3] != "0"


async def test_what_a_job_leaves_running_ends_with_it(
    pool: asyncpg.Pool,
    producer: EventProducer,
    reg: Registry,
    scripts: dict[str, Path],
    job_runner_settings: Settings,
) -> None:
    finished, lines = await _attack(pool, producer, reg, scripts, job_runner_settings, mode="daemon")
    assert finished.status is RunStatus.SUCCEEDED, (finished.reason, lines)
    (daemon,) = [int(line.split()[1]) for line in lines if line.startswith("daemon ")]

    async def gone() -> bool | None:  # killed when the run ended; its exit takes its moment
        return True if not orphans.group_members(daemon) else None

    await until(gone, "the job's daemon to be killed")


async def test_the_local_postgres_lets_no_one_in_without_its_password(job_runner_settings: Settings) -> None:
    """Whatever the network, trust and peer are gone: the DSN the docs used to give is refused, over TCP
    and over the server's Unix socket (beside its data)."""
    port = job_runner_settings.postgres_port
    socket_dir = job_runner_settings.state_path / "postgres"
    for dsn in (f"postgresql://cvloop@127.0.0.1:{port}/cvloop", f"host={socket_dir} port={port} user=cvloop"):
        refused = await asyncio.create_subprocess_exec(
            "psql",
            "-X",
            "-d",
            dsn,
            "-c",
            "SELECT 1",
            env={"PATH": os.environ["PATH"], "PGCONNECT_TIMEOUT": "5"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await refused.communicate()
        assert refused.returncode != 0
        assert b"password" in err, (dsn, err)
    with_password = await asyncpg.connect(job_runner_settings.database_url)
    try:
        assert await with_password.fetchval("SELECT 1") == 1
    finally:
        await with_password.close()


async def test_an_image_only_processing_fails_locally_with_a_clear_reason(
    pool: asyncpg.Pool, producer: EventProducer, reg: Registry
) -> None:
    processing = await processings.create_processing(
        pool, reg.project_id, "tensorrt", image="registry.example/tensorrt-convert:1"
    )
    job, run, _ = await jobs.create_job(
        pool,
        reg.project_id,
        JobKind.PROCESSING,
        target_type=TargetType.MODEL_VERSION,
        target_id=reg.base.id,
        processing_id=processing.id,
    )
    await _request(pool, producer, job, run)
    finished = await _finished(pool, reg.project_id, run.id)
    assert finished.status is RunStatus.FAILED and finished.reason is not None
    assert "registry.example/tensorrt-convert:1" in finished.reason
    assert "the local backend cannot run" in finished.reason


async def _reference_job(pool: asyncpg.Pool, producer: EventProducer, d: Deployment) -> JobRun:
    """The deployment's reference job on its dataset version (its training data), run to its end."""
    await deployments.set_training_data(pool, d.project_id, d.deployment_id, d.dataset_version_id)
    job, run, _ = await jobs.create_job(
        pool,
        d.project_id,
        JobKind.REFERENCE,
        target_type=TargetType.DEPLOYMENT,
        target_id=d.deployment_id,
        parameters={"dataset_version_id": str(d.dataset_version_id)},
    )
    await _request(pool, producer, job, run)
    return await _finished(pool, d.project_id, run.id)


async def test_a_reference_job_makes_the_deployments_reference_ready(
    job_runner: JobRunnerService,
    pool: asyncpg.Pool,
    producer: EventProducer,
    store: ObjectStore,
    job_runner_settings: Settings,
) -> None:
    d = await classification_deployment(pool)
    for pixels in digit_images()[:60]:
        await add_image(pool, store, job_runner_settings, d.project_id, d.dataset_version_id, png(pixels))
    finished = await _reference_job(pool, producer, d)
    lines = await _log_lines(pool, d.project_id, finished.id)
    assert finished.status is RunStatus.SUCCEEDED, (finished.reason, lines)
    assert "features of 60 training images computed" in lines
    deployment = await deployments.get_deployment(pool, d.project_id, d.deployment_id)
    assert deployment is not None and deployment.reference_status == "ready" and deployment.reference_id


async def test_a_reference_job_whose_command_fails_marks_the_reference_failed(
    job_runner: JobRunnerService, pool: asyncpg.Pool, producer: EventProducer, store: ObjectStore
) -> None:
    d = await classification_deployment(pool)
    await add_unreadable_image(pool, store, d, b"not an image")
    finished = await _reference_job(pool, producer, d)
    assert finished.status is RunStatus.FAILED and finished.reason is not None
    assert finished.reason.startswith("exit code 1: asset images/")
    deployment = await deployments.get_deployment(pool, d.project_id, d.deployment_id)
    assert deployment is not None and deployment.reference_status == "failed"
    assert finished.reason.endswith(deployment.reference_reason or "-")


async def _step(settings: Settings, *args: str) -> asyncio.subprocess.Process:
    """A workspace step as a Kubernetes Job's pod runs it, with the platform's settings."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.pipeline.runner.workspace",
        *args,
        env={"PATH": os.environ["PATH"]} | settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_the_pods_workspace_steps_stage_in_and_stage_out_on_sigterm(
    pool: asyncpg.Pool, store: ObjectStore, reg: Registry, job_runner_settings: Settings, tmp_path: Path
) -> None:
    experiment = await experiments.create_experiment(
        pool,
        reg.project_id,
        f"in-a-pod-{uuid4().hex[:8]}",
        base_model_version_id=reg.base.id,
        dataset_versions={"train": reg.dataset_version_id},
    )
    async with pool.acquire() as conn, conn.transaction():  # running at once: the runner here leaves it
        job, run, _ = await jobs.create_job(
            conn, reg.project_id, JobKind.TRAINING, target_type=TargetType.EXPERIMENT, target_id=experiment.id
        )
        run = await jobs.start_run(conn, reg.project_id, run.id)
    workspace = tmp_path / "workspace"
    stage_in = await _step(job_runner_settings, "stage-in", "--run-id", str(run.id), "--dir", str(workspace))
    out, err = await stage_in.communicate()
    assert stage_in.returncode == 0, err.decode()
    assert "staged in dataset train: version v1, 3 assets" in out.decode()
    assert json.loads((workspace / "job.json").read_text())["run_id"] == str(run.id)
    assert (workspace / "base_model" / "model.onnx").read_bytes() == BASE_MODEL
    assert len(list((workspace / "datasets" / "train" / "images").iterdir())) == 3

    ready = tmp_path / "stage-out-ready"
    stage_out = await _step(
        job_runner_settings,
        *(
            "stage-out",
            "--run-id",
            str(run.id),
            "--dir",
            str(workspace),
            "--on-sigterm",
            "--ready-file",
            str(ready),
        ),
    )
    (workspace / "outputs" / "model.onnx").write_bytes(b"trained in a pod")
    for _ in range(int(WAIT_S / 0.1)):  # what the pod's startup probe waits for before the job starts
        if ready.exists():
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # the sidecar waits for the pod to stop it: nothing staged out yet
    assert await jobs.run_outputs(pool, reg.project_id, run.id) is None
    stage_out.send_signal(signal.SIGTERM)
    out, err = await stage_out.communicate()
    assert stage_out.returncode == 0, err.decode()
    (recorded,) = await jobs.run_outputs(pool, reg.project_id, run.id) or []
    assert recorded.name == "model.onnx"
    assert await asyncio.to_thread(store.get_bytes, recorded.object_key) == b"trained in a pod"

    # What the runner does once the Job completed.
    finished = await finish(pool, store, job, run, Exit(True), RunLog(pool, reg.project_id, run.id))
    assert finished.status is RunStatus.SUCCEEDED
    done = await experiments.get_experiment(pool, reg.project_id, experiment.id)
    assert done is not None and [a.name for a in done.artifacts] == ["model.onnx"]


async def test_the_runners_stage_in_writes_what_the_trainers_reader_reads(
    pool: asyncpg.Pool, store: ObjectStore, reg: Registry, tmp_path: Path
) -> None:
    """Both sides of the job workspace contract: the runner's stage-in writes a workspace, the reference
    trainer's reader (cvloop.trainers.workspace) reads every file of it back as it was registered."""
    parameters = {"learning_rate": 0.05, "epochs": 2}
    experiment = await experiments.create_experiment(
        pool,
        reg.project_id,
        f"read-back-{uuid4().hex[:8]}",
        base_model_version_id=reg.base.id,
        dataset_versions={"train": reg.dataset_version_id},
        parameters=parameters | {"timeout_s": 60},
    )
    async with pool.acquire() as conn, conn.transaction():  # running at once: the runner here leaves it
        job, run, _ = await jobs.create_job(
            conn, reg.project_id, JobKind.TRAINING, target_type=TargetType.EXPERIMENT, target_id=experiment.id
        )
        run = await jobs.start_run(conn, reg.project_id, run.id)
    reader = TrainerWorkspace(tmp_path / "workspace")
    written = await stage_in(pool, store, job, run, reader, lambda _: None)

    described = JobFile.model_validate_json(reader.job_file.read_text())
    assert described == written and (described.run_id, described.experiment_id) == (run.id, experiment.id)
    assert reader.parameters(Parameters).model_dump() == parameters  # the runner's timeout_s left out
    version = reader.base_model_version()
    assert (version.id, version.version, version.labels) == (reg.base.id, "v1", LABELS)
    assert (version.io, version.training_parameters) == (ModelIO(width=32, height=32), {"epochs": 3})
    assert reader.base_model_bytes() == BASE_MODEL
    assert reader.aliases() == ["train"]
    assets = list(reader.assets("train"))
    assert sorted(a.annotation.classes[0] for a in assets if a.annotation) == sorted(LABELS)
    stored = [png(pixels) for pixels in digit_images()[:3]]
    assert sorted(reader.asset_bytes("train", a) for a in assets) == sorted(stored)
    assert json.loads(reader.labels_file("train").read_text()) == LABELS
    assert reader.outputs.is_dir() and not any(reader.outputs.iterdir())


async def test_a_workspace_step_for_an_unknown_run_fails_with_the_reason(
    job_runner_settings: Settings, tmp_path: Path
) -> None:
    missing = uuid4()
    step = await _step(job_runner_settings, "stage-in", "--run-id", str(missing), "--dir", str(tmp_path))
    _, err = await step.communicate()
    assert step.returncode == 1
    assert err.decode().strip().splitlines()[-1] == f"run {missing} does not exist"
