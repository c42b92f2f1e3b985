"""The PyTorch detection trainer (cvloop.trainers.detection) on the generated detection world: its reader on
a workspace the runner's real stage-in wrote; the job runner running it through the real Postgres, broker
and S3 as a detector version names it (`python -m cvloop.trainers.detection` in the torch trainer image,
for which the local backend runs the torch environment's Python), its exported model registering as
servable and serving through the real tritonserver as onnxruntime answers; the ONNX export's parity with
torch; rehearsal images sampled each epoch.

Parity tolerance: onnxruntime and torch run the same float32 graph, so box corners agree within
BOX_ATOL_PX (input pixels) and scores within SCORE_ATOL, and the classes and the order are the same."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import numpy as np
import onnxruntime
import pytest

from cvloop.demo.detection_world import CANVAS, DRIFTED, TRAINING, scenes
from cvloop.demo.detector import torch_python
from cvloop.demo.digits import LABELS, TrainedModel, png
from cvloop.demo.polling import until
from cvloop.demo.registration import register_onnx_model
from cvloop.demo.scoring import add_image
from cvloop.demo.trainer_workspace import Asset, build_workspace
from cvloop.stack.service import Serving
from cvloop.trainers.detection_data import REHEARSAL_ALIAS, detector_io, detector_training, read_alias
from cvloop.trainers.workspace import Workspace
from schemas.events import DeploymentChange, DeploymentKind, JobKind
from schemas.model_io import ModelIO
from schemas.model_version import CHECKPOINT_FILE, IO_FILE, LABELS_FILE, METRICS_FILE, MODEL_FILE
from schemas.object_keys import ObjectKind
from schemas.predictions import DetectionType
from schemas.topics import Topic
from schemas.vocabulary import RunStatus, Scope, TargetType
from services.common.db.repositories import deployments, experiments, jobs, projects, registry
from services.common.domain.jobs import JobRun
from services.common.domain.registry import ModelFile, NewModelVersion
from services.common.kafka.producer import EventProducer
from services.common.servable import unservable_because
from services.common.settings import Settings
from services.common.storage import ObjectStore
from services.pipeline.runner.service import JobRunnerService
from services.pipeline.runner.workspace.stage_in import stage_in
from tests.conftest import REPO_ROOT

BOX_ATOL_PX = 1e-3
SCORE_ATOL = 1e-5
TRAIN, TEST = 40, 12  # scenes: enough to train an epoch and score AP, small enough for two CPU cores


@pytest.fixture(scope="module")
def module_settings(job_runner_settings: Settings) -> Settings:
    return job_runner_settings


@dataclass(frozen=True)
class World:
    project_id: UUID
    base_id: UUID
    datasets: dict[str, UUID]  # alias: dataset version


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, store: ObjectStore, job_runner_settings: Settings) -> World:
    """A project whose detector version (no checkpoint: the trainer starts fresh) trains in the torch
    trainer image, on a training and a drifted test dataset version of the generated world."""
    await asyncio.to_thread(torch_python)  # installed: the local backend's stand-in for that image
    entrypoint, image = detector_training()
    project = await projects.create_project(pool, f"detection-{uuid4().hex[:8]}")
    labelmap = await registry.create_labelmap(pool, project.id, "digits", LABELS)
    dataset = await registry.create_dataset(pool, project.id, "digit-scenes")
    versions = {}
    for alias, found in (("train", scenes(TRAINING, TRAIN, 1)), ("test", scenes(DRIFTED, TEST, 2, True))):
        version = await registry.create_dataset_version(
            pool, project.id, dataset.id, alias, DetectionType.DETECTION, labelmap_id=labelmap.id
        )
        for scene in found:
            asset = await add_image(
                pool, store, job_runner_settings, project.id, version.id, png(scene.pixels)
            )
            await registry.add_annotation(pool, project.id, asset.id, scene.truth.model_dump(mode="json"))
        versions[alias] = version.id
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.MODELS, b"not used", "application/onnx")
    model = await registry.create_model(pool, project.id, "digit-detector")
    base = await registry.create_model_version(
        pool,
        project.id,
        model.id,
        NewModelVersion(
            version="v0",
            detection_type=DetectionType.DETECTION,
            labelmap_id=labelmap.id,
            training_entrypoint=entrypoint,
            training_image=image,
            io=detector_io(CANVAS),
            files=[
                ModelFile(
                    name=MODEL_FILE, object_key=stored.key, sha256=stored.sha256, size_bytes=stored.size
                )
            ],
            dataset_versions=versions,
        ),
    )
    return World(project.id, base.id, versions)


async def _experiment(pool: asyncpg.Pool, world: World, parameters: dict[str, object]) -> tuple[UUID, JobRun]:
    experiment = await experiments.create_experiment(
        pool,
        world.project_id,
        f"detector-{uuid4().hex[:8]}",
        base_model_version_id=world.base_id,
        parameters=parameters,
        dataset_versions=world.datasets,
    )
    _, run, _ = await jobs.create_job(
        pool, world.project_id, JobKind.TRAINING, target_type=TargetType.EXPERIMENT, target_id=experiment.id
    )
    return experiment.id, run


async def test_the_trainers_reader_reads_what_the_runners_stage_in_wrote(
    pool: asyncpg.Pool, store: ObjectStore, world: World, tmp_path: Path
) -> None:
    _, run = await _experiment(pool, world, {"epochs": 1, "timeout_s": 60})
    async with pool.acquire() as conn, conn.transaction():  # running at once: no runner claims it
        found = await jobs.get_run(conn, world.project_id, run.id)
        assert found is not None
        run = await jobs.start_run(conn, world.project_id, run.id)
    reader = Workspace(tmp_path / "workspace")
    await stage_in(pool, store, found[0], run, reader, lambda _: None)

    expected = {"train": list(scenes(TRAINING, TRAIN, 1)), "test": list(scenes(DRIFTED, TEST, 2, True))}
    for alias, made in expected.items():
        read = read_alias(reader, alias, LABELS, CANVAS)
        assert read.images.shape == (len(made), 3, CANVAS, CANVAS) and read.unannotated == 0
        # Images in input order as stored: match each read image to the scene it was made from.
        made_by_pixels = {s.pixels.tobytes(): s for s in made}
        for image, truth, classes in zip(read.images, read.truths, read.classes, strict=True):
            pixels = np.rint(image.transpose(1, 2, 0) * 255).astype(np.uint8)  # the canvas's own size
            scene = made_by_pixels[pixels.tobytes()]
            assert truth == scene.truth
            assert classes.tolist() == [LABELS.index(c) for c in scene.truth.classes]
    # At another image size the boxes scale with the image.
    halved = read_alias(reader, "test", LABELS, CANVAS // 2)
    full = read_alias(reader, "test", LABELS, CANVAS)
    for small, large in zip(halved.boxes, full.boxes, strict=True):
        np.testing.assert_allclose(small * 2, large)


@pytest.fixture(scope="module")
async def trained(
    job_runner: JobRunnerService, pool: asyncpg.Pool, store: ObjectStore, world: World
) -> dict[str, bytes]:
    """The runner's run of the trainer: its experiment's artifacts by name."""
    experiment_id, run = await _experiment(pool, world, {"epochs": 2, "batch_size": 8, "seed": 3})

    async def finished() -> JobRun | None:
        found = await jobs.get_run(pool, world.project_id, run.id)
        assert found is not None
        return found[1] if found[1].status in (RunStatus.SUCCEEDED, RunStatus.FAILED) else None

    done = await until(finished, f"run {run.id} to finish", timeout_s=300)
    lines = [line.line for line in await jobs.read_logs(pool, world.project_id, run.id)]
    assert done.status is RunStatus.SUCCEEDED, (done.reason, lines[-20:])
    epochs = [json.loads(line) for line in lines if '"msg":"epoch"' in line]
    assert [entry["epoch"] for entry in epochs] == [1, 2] and all("loss" in entry for entry in epochs)
    experiment = await experiments.get_experiment(pool, world.project_id, experiment_id)
    assert experiment is not None
    return {a.name: await asyncio.to_thread(store.get_bytes, a.object_key) for a in experiment.artifacts}


async def test_the_job_runner_trains_the_detector_with_the_torch_environment(
    trained: dict[str, bytes],
) -> None:
    assert set(trained) == {MODEL_FILE, CHECKPOINT_FILE, LABELS_FILE, METRICS_FILE, IO_FILE}
    assert json.loads(trained[LABELS_FILE]) == LABELS
    assert ModelIO.model_validate_json(trained[IO_FILE]) == detector_io(CANVAS)
    metrics = json.loads(trained[METRICS_FILE])
    for name in ("ap", "ap50", "ar"):
        assert 0.0 <= metrics[f"{name}_before"] <= 1.0 and 0.0 <= metrics[f"{name}_after"] <= 1.0
    assert (metrics["train_assets"], metrics["test_assets"], metrics["image_size"]) == (TRAIN, TEST, CANVAS)


SERVED_THRESHOLD = 0.01  # low: a two-epoch detector's scores are low; every answer above it is compared


@pytest.fixture(scope="module")
async def served(
    pool: asyncpg.Pool, store: ObjectStore, world: World, trained: dict[str, bytes], triton_settings: Settings
) -> AsyncIterator[tuple[str, UUID]]:
    """The exported detector registered (the servability check registration makes) and deployed on the
    real tritonserver through `python -m services.serving`: the serving URL and the deployment."""
    base = await registry.get_model_version(pool, world.project_id, world.base_id)
    assert base is not None
    exported = TrainedModel(trained[MODEL_FILE], detector_io(CANVAS), LABELS, float("nan"))
    version_id = await register_onnx_model(
        pool,
        store,
        world.project_id,
        "digit-detector",
        "v1",
        exported,
        DetectionType.DETECTION,
        base.labelmap_id,
    )
    version = await registry.get_model_version(pool, world.project_id, version_id)
    assert version is not None
    problem = await unservable_because(pool, store, world.project_id, version)
    assert problem is None, f"{problem.field}: {problem}"
    deployment = await deployments.create_deployment(
        pool,
        world.project_id,
        f"detector-{uuid4().hex[:8]}",
        kind=DeploymentKind.SERVED,
        detection_type=DetectionType.DETECTION,
        champion_model_version_id=version_id,
        confidence_threshold=SERVED_THRESHOLD,
    )
    async with EventProducer.from_settings(triton_settings) as producer:
        await producer.publish(Topic.DEPLOYMENTS, deployment.updated_event(DeploymentChange.CREATED))
    serving = Serving(triton_settings)
    serving.start()
    try:
        yield f"http://127.0.0.1:{triton_settings.serving_port}", deployment.id
    finally:
        serving.stop()


async def test_the_exported_detector_serves_through_triton_as_onnxruntime_answers(
    pool: asyncpg.Pool, world: World, trained: dict[str, bytes], served: tuple[str, UUID]
) -> None:
    url, deployment_id = served
    _, key = await projects.create_api_key(pool, world.project_id, "serve", [Scope.READ, Scope.WRITE])
    session = onnxruntime.InferenceSession(trained[MODEL_FILE], providers=["CPUExecutionProvider"])
    compared = 0
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        for scene in scenes(DRIFTED, 3, 7, True):

            async def answered(image: bytes = png(scene.pixels)) -> dict[str, Any] | None:
                response = await client.post(f"{url}/v1/deployments/{deployment_id}/predict", content=image)
                assert response.status_code in (200, 404, 503), response.text  # 404, 503: still loading
                return response.json()["prediction"] if response.status_code == 200 else None

            prediction = await until(answered, "the detector to serve", timeout_s=180)
            image = (scene.pixels.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
            (rows,) = session.run(None, {"images": image})[0]
            rows = rows[rows[:, 4] >= SERVED_THRESHOLD]  # the canvas is the input's size: no rescaling
            assert prediction["type"] == "detection"
            assert prediction["classes"] == [LABELS[int(c)] for c in rows[:, 5]]
            np.testing.assert_allclose(prediction["scores"], rows[:, 4], rtol=1e-3, atol=1e-6)
            boxes = np.clip(rows[:, :4], 0, CANVAS)  # serving keeps boxes inside the image
            np.testing.assert_allclose(np.array(prediction["boxes"]).reshape(-1, 4), boxes, atol=0.5)
            compared += len(rows)
    assert compared > 0  # boxes were compared, not only empty answers


PARITY = """
import json, sys
import numpy as np, onnxruntime, torch
from cvloop.trainers.detection import TinyCenterNet, decode
saved = torch.load(sys.argv[1], weights_only=True)
model = TinyCenterNet(len(saved["labels"]))
model.load_state_dict(saved["state_dict"])
model.eval()
images = np.load(sys.argv[3])
session = onnxruntime.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
worst = {"boxes": 0.0, "scores": 0.0, "classes_equal": True}
for image in images:
    with torch.no_grad():
        expected = decode(*model(torch.from_numpy(image[None]))).numpy()
    (got,) = session.run(None, {"images": image[None]})
    worst["boxes"] = max(worst["boxes"], float(np.abs(got[..., :4] - expected[..., :4]).max()))
    worst["scores"] = max(worst["scores"], float(np.abs(got[..., 4] - expected[..., 4]).max()))
    worst["classes_equal"] &= bool((got[..., 5] == expected[..., 5]).all())
print(json.dumps(worst))
"""


def test_the_onnx_export_answers_as_torch_does(trained: dict[str, bytes], tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(trained[CHECKPOINT_FILE])
    (tmp_path / "model.onnx").write_bytes(trained[MODEL_FILE])
    images = np.stack([s.pixels.transpose(2, 0, 1) / 255.0 for s in scenes(DRIFTED, 8, 9)]).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    answer = subprocess.run(
        [
            str(torch_python()),
            "-c",
            PARITY,
            *(str(tmp_path / n) for n in ("model.pt", "model.onnx", "images.npy")),
        ],
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    worst = json.loads(answer.stdout)
    assert worst["boxes"] <= BOX_ATOL_PX and worst["scores"] <= SCORE_ATOL and worst["classes_equal"], worst


def run_trainer(workspace: Path) -> subprocess.CompletedProcess[str]:
    """The trainer as the runner starts it, in a workspace built here (cvloop.demo.trainer_workspace)."""
    env = os.environ | {"CVLOOP_JOB_DIR": str(workspace), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [str(torch_python()), "-m", "cvloop.trainers.detection"], env=env, capture_output=True, text=True
    )


def test_fine_tuning_starts_from_the_base_checkpoint(trained: dict[str, bytes], tmp_path: Path) -> None:
    """On the runner's test images, the base checkpoint scores before fine-tuning what the run that made
    it scored after: the trainer starts from those weights, not fresh ones."""
    base = TrainedModel(trained[MODEL_FILE], detector_io(CANVAS), LABELS, float("nan"))
    datasets = {
        "feedback": [Asset(s.pixels, s.truth) for s in scenes(DRIFTED, 16, 5)],
        "test": [Asset(s.pixels, s.truth) for s in scenes(DRIFTED, TEST, 2, True)],
    }
    workspace = build_workspace(
        tmp_path, base, {"epochs": 1}, datasets, DetectionType.DETECTION, trained[CHECKPOINT_FILE]
    )
    finished = run_trainer(workspace)
    assert finished.returncode == 0, finished.stderr
    before, after = (
        json.loads(t) for t in (trained[METRICS_FILE], (workspace / "outputs" / METRICS_FILE).read_text())
    )
    for name in ("ap", "ap50", "ar"):
        assert after[f"{name}_before"] == pytest.approx(before[f"{name}_after"], abs=1e-9)


def test_each_epoch_samples_rehearsal_images_up_to_the_ratio(
    trained: dict[str, bytes], tmp_path: Path
) -> None:
    """10 reviewed images, 16 rehearsal ones at rehearsal_ratio 0.5: each epoch trains on the 10 and 5
    rehearsal images, logged; the model's training assets are the reviewed ones."""
    base = TrainedModel(trained[MODEL_FILE], detector_io(CANVAS), LABELS, float("nan"))
    datasets = {
        "feedback": [Asset(s.pixels, s.truth) for s in scenes(DRIFTED, 10, 5)],
        REHEARSAL_ALIAS: [Asset(s.pixels, s.truth) for s in scenes(TRAINING, 16, 6)],
    }
    parameters = {"epochs": 2, "rehearsal_ratio": 0.5, "image_size": 32}
    workspace = build_workspace(
        tmp_path, base, parameters, datasets, DetectionType.DETECTION, trained[CHECKPOINT_FILE]
    )
    finished = run_trainer(workspace)
    assert finished.returncode == 0, finished.stderr
    logged = [json.loads(line) for line in finished.stderr.splitlines() if line.startswith("{")]
    (data,) = [entry for entry in logged if entry["msg"] == "data"]
    assert (data["train_assets"], data["rehearsal_assets"]) == (10, 16)
    epochs = [entry for entry in logged if entry["msg"] == "epoch"]
    assert [(e["epoch"], e["rehearsal_images"]) for e in epochs] == [(1, 5), (2, 5)]
    outputs = workspace / "outputs"
    metrics = json.loads((outputs / METRICS_FILE).read_text())
    assert (metrics["train_assets"], metrics["rehearsal_images_per_epoch"]) == (10, 5)
    # Trained at another size than the base's: io.json says how serving calls this model.
    assert ModelIO.model_validate_json((outputs / IO_FILE).read_text()) == detector_io(32)


def test_a_checkpoint_of_other_labels_fails_the_run_naming_them(
    trained: dict[str, bytes], tmp_path: Path
) -> None:
    letters = list("abcdefghij")
    base = TrainedModel(trained[MODEL_FILE], detector_io(CANVAS), letters, float("nan"))
    datasets = {"feedback": [Asset(s.pixels, None) for s in scenes(DRIFTED, 2, 5)]}
    workspace = build_workspace(
        tmp_path, base, {}, datasets, DetectionType.DETECTION, trained[CHECKPOINT_FILE]
    )
    finished = run_trainer(workspace)
    assert finished.returncode == 1
    assert finished.stderr.strip().splitlines()[-1] == (
        f"training failed: base_model/model.pt scores the labels {LABELS}, the labelmap has {letters}"
    )
    assert not (workspace / "outputs").exists()


def test_a_bad_parameter_fails_the_run_naming_it(trained: dict[str, bytes], tmp_path: Path) -> None:
    base = TrainedModel(trained[MODEL_FILE], detector_io(CANVAS), LABELS, float("nan"))
    datasets = {"feedback": [Asset(s.pixels, s.truth) for s in scenes(DRIFTED, 2, 5)]}
    workspace = build_workspace(tmp_path, base, {"image_size": 60}, datasets, DetectionType.DETECTION)
    finished = run_trainer(workspace)
    assert finished.returncode == 1
    assert finished.stderr.strip().splitlines()[-1] == (
        "training failed: parameters.json: image_size: Input should be a multiple of 8 (got 60)"
    )
