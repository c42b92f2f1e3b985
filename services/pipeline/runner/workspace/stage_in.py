"""Staging in: the job's workspace filled from Postgres and the object store before its command runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import TypeAdapter

from schemas.events import JobKind
from schemas.job_workspace import (
    TRAINING_ALIAS,
    AssetLine,
    JobFile,
    JobWorkspace,
    ModelVersionFile,
    image_file,
)
from schemas.names import ALIAS
from schemas.object_keys import parse_key, validate_key
from schemas.predictions import Prediction
from schemas.vocabulary import TargetType
from services.common.db.repositories import experiments, registry
from services.common.domain.jobs import Job, JobRun
from services.common.storage import ObjectStore

from ..commands import RUNNER_PARAMETERS

PAGE = 500
DOWNLOADS_AT_ONCE = 16
_PREDICTION: TypeAdapter[Prediction] = TypeAdapter(Prediction)

Log = Callable[[str], None]


class StageError(Exception):
    """The workspace cannot be made; the message is the reason the run fails with."""


def command_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """What the command sees of the parameters: not those the runner itself reads (its time limit, the
    resources of its Kubernetes Job), which a trainer checking its parameters would not know."""
    return {name: value for name, value in parameters.items() if name not in RUNNER_PARAMETERS}


def job_file(job: Job, run: JobRun, parameters: dict[str, Any]) -> JobFile:
    """job.json of a run (pure): the job's target under its own name, and a reference job's training
    dataset version, which its parameters carry."""
    target = {job.target_type: job.target_id}
    dataset_version_id = target.get(TargetType.DATASET_VERSION) or parameters.get("dataset_version_id")
    return JobFile(
        job_id=job.id,
        run_id=run.id,
        attempt=run.attempt,
        kind=job.kind,
        parameters=parameters,
        experiment_id=target.get(TargetType.EXPERIMENT),
        model_version_id=target.get(TargetType.MODEL_VERSION),
        dataset_version_id=dataset_version_id,
        deployment_id=target.get(TargetType.DEPLOYMENT),
    )


async def stage_in(
    pool: asyncpg.Pool, store: ObjectStore, job: Job, run: JobRun, workspace: JobWorkspace, log: Log
) -> JobFile:
    """Write job.json, parameters.json, the base model and the datasets a job of this kind needs (a
    reference job: its training dataset version as the `training` alias)."""
    parameters = job.parameters
    model_version_id: UUID | None = None
    dataset_versions: dict[str, UUID] = {}
    if job.kind is JobKind.TRAINING:
        experiment = await experiments.get_experiment(pool, job.project_id, job.target_id)
        if experiment is None:
            raise StageError(f"experiment {job.target_id} does not exist")
        parameters = experiment.parameters
        model_version_id = experiment.base_model_version_id
        dataset_versions = experiment.dataset_versions
    elif job.kind is JobKind.PROCESSING:
        model_version_id = job.target_id
    parameters = command_parameters(parameters)
    described = job_file(job, run, parameters)
    if job.kind is JobKind.REFERENCE:  # the deployment's training data
        if described.dataset_version_id is None:
            raise StageError("a reference job's parameters name no dataset_version_id")
        dataset_versions = {TRAINING_ALIAS: described.dataset_version_id}
    workspace.outputs.mkdir(parents=True, exist_ok=True)
    workspace.job_file.write_text(described.model_dump_json(indent=2))
    workspace.parameters_file.write_text(json.dumps(parameters, indent=2))
    if model_version_id is not None:
        await _stage_model(pool, store, job.project_id, model_version_id, workspace, log)
    for alias, dataset_version_id in dataset_versions.items():
        await _stage_dataset(pool, store, job.project_id, alias, dataset_version_id, workspace, log)
    return described


async def _download(store: ObjectStore, pairs: list[tuple[str, Path]]) -> None:
    def fetch(key: str, path: Path) -> None:
        store.client.fget_object(store.bucket, validate_key(key), str(path))

    for start in range(0, len(pairs), DOWNLOADS_AT_ONCE):
        chunk = pairs[start : start + DOWNLOADS_AT_ONCE]
        await asyncio.gather(*(asyncio.to_thread(fetch, key, path) for key, path in chunk))


async def _stage_model(
    pool: asyncpg.Pool,
    store: ObjectStore,
    project_id: UUID,
    model_version_id: UUID,
    workspace: JobWorkspace,
    log: Log,
) -> None:
    version = await registry.get_model_version(pool, project_id, model_version_id)
    if version is None:
        raise StageError(f"model version {model_version_id} does not exist")
    labelmap = version.labelmap_id and await registry.get_labelmap(pool, project_id, version.labelmap_id)
    workspace.base_model.mkdir(parents=True, exist_ok=True)
    pairs = []
    for file in version.files:
        path = (workspace.base_model / file.name).resolve()
        if not path.is_relative_to(workspace.base_model.resolve()):
            raise StageError(f"model file name {file.name!r} leaves the base_model folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        pairs.append((file.object_key, path))
    await _download(store, pairs)
    described = ModelVersionFile(
        id=version.id,
        version=version.version,
        detection_type=version.detection_type,
        labels=labelmap.labels if labelmap else None,
        io=version.io,
        training_parameters=version.training_parameters,
    )
    workspace.model_version_file.write_text(described.model_dump_json(indent=2))
    log(f"staged in model version {version.version} ({len(version.files)} files)")


async def _stage_dataset(
    pool: asyncpg.Pool,
    store: ObjectStore,
    project_id: UUID,
    alias: str,
    dataset_version_id: UUID,
    workspace: JobWorkspace,
    log: Log,
) -> None:
    if not ALIAS.fullmatch(alias):
        raise StageError(f"dataset alias {alias!r} is not a usable folder name (letters, digits, . _ -)")
    version = await registry.get_dataset_version(pool, project_id, dataset_version_id)
    if version is None:
        raise StageError(f"dataset version {dataset_version_id} ({alias}) does not exist")
    folder = workspace.dataset(alias)
    workspace.images(alias).mkdir(parents=True, exist_ok=True)
    if version.labelmap_id is not None:
        labelmap = await registry.get_labelmap(pool, project_id, version.labelmap_id)
        if labelmap is not None:
            workspace.labels_file(alias).write_text(json.dumps(labelmap.labels))
    count = 0
    with workspace.assets_file(alias).open("w") as lines:
        while page := await registry.list_assets(
            pool, project_id, dataset_version_id, limit=PAGE, offset=count
        ):
            annotations = await registry.annotations_of(pool, project_id, [a.id for a in page])
            pairs = []
            for asset in page:
                name = image_file(asset.id, parse_key(asset.object_key).extension)
                pairs.append((asset.object_key, folder / name))
                latest = annotations[asset.id][-1] if annotations[asset.id] else None
                line = AssetLine(
                    asset_id=asset.id,
                    file=name,
                    annotation=_PREDICTION.validate_python(latest.shapes) if latest else None,
                )
                lines.write(line.model_dump_json() + "\n")
            await _download(store, pairs)
            count += len(page)
    log(f"staged in dataset {alias}: version {version.version}, {count} assets")
