"""The `reference` job: the image features of every asset of the deployment's training dataset version,
read from the object store, the outlier model fitted on them, and the reference stored as one object.
The deployment's reference status moves computing -> ready, or failed with the reason; the job run
pending -> running -> succeeded or failed. Runs again harmlessly: the object is content-addressed, the
reference id derives from the run, and a finished run is not run twice."""

from __future__ import annotations

import asyncio
import logging
import uuid
from uuid import UUID

import asyncpg
import numpy as np
from minio.error import S3Error

from schemas.events import JobRequested
from schemas.features import IMAGE_FEATURES, image_features
from schemas.object_keys import ObjectKind
from services.common.db.repositories import jobs, registry
from services.common.db.repositories.base import Conflict
from services.common.db.repositories.deployments import project_of
from services.common.db.repositories.training_references import (
    TrainingReference,
    fail_reference,
    make_reference_ready,
)
from services.common.images import InvalidImage, decode_image
from services.common.storage import ObjectStore

from .metrics import REFERENCE_JOBS
from .outlier import FloatVector
from .reference import build_reference

logger = logging.getLogger(__name__)

DETECTOR = "mahalanobis-ledoit-wolf"
REFERENCE_NAMESPACE = UUID("9d3c2a41-5b7e-4f08-8c6d-2e1f0a9b7c35")
PAGE = 500


class ReferenceFailed(Exception):
    """The training data cannot give a reference; the message is the reason people see."""


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


async def _start(pool: asyncpg.Pool, project_id: UUID, job: JobRequested) -> bool:
    """Move the run to running; False when it already finished (a replayed request)."""
    try:
        await jobs.start_run(pool, project_id, job.run_id)
    except Conflict:
        runs = await jobs.list_runs(pool, project_id, job.job_id)
        run = next((r for r in runs if r.id == job.run_id), None)
        return run is not None and run.status is jobs.RunStatus.RUNNING  # interrupted before: redo it
    return True


async def run_reference_job(
    pool: asyncpg.Pool, store: ObjectStore, job: JobRequested, *, sample_size: int, max_bytes: int
) -> None:
    if job.dataset_version_id is None:
        raise ValueError("dataset_version_id: a reference job needs the training dataset version")
    project_id = await project_of(pool, job.deployment_id)
    if project_id is None:
        raise LookupError(f"deployment {job.deployment_id} does not exist")
    if not await _start(pool, project_id, job):
        return
    log: list[tuple[int, str]] = []
    try:
        features = await _training_features(pool, store, project_id, job.dataset_version_id, max_bytes)
        log.append((len(log), f"features of {len(features)} training images computed"))
        try:
            reference = await asyncio.to_thread(build_reference, features, sample_size)
        except ValueError as exc:
            raise ReferenceFailed(str(exc)) from None
        stored = await asyncio.to_thread(store.put_bytes, ObjectKind.REFERENCES, reference.to_bytes())
        log.append((len(log), f"{DETECTOR} fitted; reference stored as {stored.key}"))
        row = TrainingReference(
            id=uuid.uuid5(REFERENCE_NAMESPACE, str(job.run_id)),
            project_id=project_id,
            deployment_id=job.deployment_id,
            dataset_version_id=job.dataset_version_id,
            job_run_id=job.run_id,
            object_key=stored.key,
            detector=DETECTOR,
            feature_names=list(reference.feature_names),
            training_size=reference.training_size,
            sample_size=len(reference.sample),
        )
        if not await make_reference_ready(pool, row):
            log.append((len(log), "the deployment's training data changed meanwhile: reference not used"))
    except ReferenceFailed as exc:
        await _fail(pool, project_id, job, str(exc), log)
        return
    await jobs.append_logs(pool, project_id, job.run_id, log)
    await jobs.finish_run(pool, project_id, job.run_id, jobs.RunStatus.SUCCEEDED)
    REFERENCE_JOBS.labels("succeeded").inc()


async def _fail(
    pool: asyncpg.Pool, project_id: UUID, job: JobRequested, reason: str, log: list[tuple[int, str]]
) -> None:
    assert job.dataset_version_id is not None
    logger.warning("reference job failed", extra={"job_id": str(job.job_id), "reason": reason})
    await fail_reference(pool, project_id, job.deployment_id, job.dataset_version_id, reason)
    await jobs.append_logs(pool, project_id, job.run_id, [*log, (len(log), f"failed: {reason}")])
    await jobs.finish_run(pool, project_id, job.run_id, jobs.RunStatus.FAILED, reason=reason)
    REFERENCE_JOBS.labels("failed").inc()
