"""The `reference` job's command, `python -m services.scoring.reference_job`, which the job runner runs in a
job workspace with the platform's settings: the image features of every asset of the deployment's
training dataset version, read from the object store, the outlier model fitted on them, the reference
stored as one object, and the deployment's reference status moved computing -> ready, or failed with the
reason (printed as the last line, exit code 1). The runner owns the job run's status and log.

Runs again harmlessly: the object is content-addressed and the reference id derives from the run."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import asyncpg
import numpy as np
from minio.error import S3Error
from pydantic import BaseModel, ConfigDict

from schemas.features import IMAGE_FEATURES, image_features
from schemas.job_workspace import JOB_DIR_ENV, JobFile, JobWorkspace
from schemas.object_keys import ObjectKind
from services.common.db.pool import create_pool
from services.common.db.repositories import registry
from services.common.db.repositories.deployments import project_of
from services.common.db.repositories.training_references import fail_reference, make_reference_ready
from services.common.domain.deployments import TrainingReference
from services.common.domain.images import InvalidImage, decode_image
from services.common.storage import ObjectStore

from .outlier import FloatVector
from .reference import build_reference
from .settings import ScoringSettings

DETECTOR = "mahalanobis-ledoit-wolf"
REFERENCE_NAMESPACE = UUID("9d3c2a41-5b7e-4f08-8c6d-2e1f0a9b7c35")
PAGE = 500

Log = Callable[[str], None]


class ReferenceFailed(Exception):
    """The training data cannot give a reference; the message is the reason people see."""


class ReferenceRequest(BaseModel):
    """What a reference job needs of the workspace's job.json (schemas.job_workspace.JobFile)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: UUID
    deployment_id: UUID
    dataset_version_id: UUID


def asset_features(data: bytes, max_bytes: int) -> FloatVector:
    """IMAGE_FEATURES of one image file, in order."""
    values = image_features(decode_image(data, max_bytes).pixels)
    return np.array([values[name] for name in IMAGE_FEATURES])


async def _training_features(
    pool: asyncpg.Pool, store: ObjectStore, project_id: UUID, dataset_version_id: UUID, max_bytes: int
) -> np.ndarray:
    def load(key: str) -> FloatVector:
        try:
            return asset_features(store.get_bytes(key), max_bytes)
        except InvalidImage as exc:
            raise ReferenceFailed(f"asset {key}: {exc}") from None
        except S3Error as exc:
            if exc.code != "NoSuchKey":
                raise
            raise ReferenceFailed(f"asset {key} is not in the object store") from None

    rows: list[FloatVector] = []
    offset = 0
    while page := await registry.list_assets(pool, project_id, dataset_version_id, limit=PAGE, offset=offset):
        rows += await asyncio.gather(*(asyncio.to_thread(load, asset.object_key) for asset in page))
        offset += len(page)
    if len(rows) < 2:
        raise ReferenceFailed(
            f"dataset version {dataset_version_id} has {len(rows)} assets; at least 2 are needed"
        )
    return np.array(rows)


async def compute_reference(
    pool: asyncpg.Pool,
    store: ObjectStore,
    request: ReferenceRequest,
    *,
    sample_size: int,
    max_bytes: int,
    log: Log,
) -> None:
    """Make the deployment's reference ready; ReferenceFailed (the deployment's reference marked failed
    with the reason) when its training data cannot give one."""
    project_id = await project_of(pool, request.deployment_id)
    if project_id is None:
        raise ReferenceFailed(f"deployment {request.deployment_id} does not exist")
    try:
        features = await _training_features(pool, store, project_id, request.dataset_version_id, max_bytes)
        log(f"features of {len(features)} training images computed")
        try:
            reference = await asyncio.to_thread(build_reference, features, sample_size)
        except ValueError as exc:
            raise ReferenceFailed(str(exc)) from None
    except ReferenceFailed as exc:
        await fail_reference(pool, project_id, request.deployment_id, request.dataset_version_id, str(exc))
        raise
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.REFERENCES, reference.to_bytes())
    log(f"{DETECTOR} fitted; reference stored as {stored.key}")
    row = TrainingReference(
        id=uuid.uuid5(REFERENCE_NAMESPACE, str(request.run_id)),
        project_id=project_id,
        deployment_id=request.deployment_id,
        dataset_version_id=request.dataset_version_id,
        job_run_id=request.run_id,
        object_key=stored.key,
        detector=DETECTOR,
        feature_names=list(reference.feature_names),
        training_size=reference.training_size,
        sample_size=len(reference.sample),
    )
    if await make_reference_ready(pool, row):
        log("the deployment's reference is ready")
    else:
        log("the deployment's training data changed meanwhile, or this run's reference is stored: not used")


async def _main(settings: ScoringSettings, request: ReferenceRequest) -> None:
    pool = await create_pool(settings.database_url, max_size=4)
    try:
        await compute_reference(
            pool,
            ObjectStore.from_settings(settings),
            request,
            sample_size=settings.scoring_reference_sample_size,
            max_bytes=settings.max_image_bytes,
            log=lambda line: print(line, flush=True),
        )
    finally:
        await pool.close()


def main() -> None:
    job_file = JobWorkspace(Path(os.environ[JOB_DIR_ENV])).job_file
    try:
        job = JobFile.model_validate_json(job_file.read_text())
        request = ReferenceRequest.model_validate(job.model_dump())
        asyncio.run(_main(ScoringSettings(), request))
    except (ReferenceFailed, ValueError) as exc:
        print(exc, file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
