"""Rows and events the scoring and job-runner tests and bench/scoring.py share: a project with a
classification deployment, images (or bytes that are none) in its dataset version, a ready reference of
digit-like features, and predictions of digit images built with the shared schemas and feature function."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import numpy as np

from cvloop.demo.digits import digit_images, feature_matrix, png
from schemas.events import (
    DeploymentKind,
    ImageRef,
    PredictionLogged,
    PredictionSource,
    RoleResult,
)
from schemas.features import IMAGE_FEATURES, RgbImage, features, image_dhash
from schemas.object_keys import ObjectKind
from schemas.predictions import ClassificationPrediction, DetectionType
from services.common.db.repositories import deployments, projects, registry
from services.common.db.repositories.training_references import make_reference_ready
from services.common.domain.deployments import TrainingReference
from services.common.domain.images import decode_image
from services.common.domain.registry import Asset
from services.common.settings import Settings
from services.common.storage import ObjectStore
from services.common.storage.images import store_image
from services.scoring.reference import Reference, build_reference


@dataclass(frozen=True)
class Deployment:
    project_id: UUID
    deployment_id: UUID
    dataset_version_id: UUID


async def classification_deployment(pool: asyncpg.Pool) -> Deployment:
    project = await projects.create_project(pool, f"scoring-{uuid4()}")
    dataset = await registry.create_dataset(pool, project.id, "digits")
    version = await registry.create_dataset_version(
        pool, project.id, dataset.id, "v1", DetectionType.CLASSIFICATION
    )
    deployment = await deployments.create_deployment(
        pool,
        project.id,
        "digits",
        kind=DeploymentKind.MONITORING_ONLY,
        detection_type=DetectionType.CLASSIFICATION,
    )
    return Deployment(project.id, deployment.id, version.id)


def reference_features(rows: int, rng: np.random.Generator) -> np.ndarray:
    """`rows` training-like feature rows: the digits' own features, resampled with a little jitter."""
    base = feature_matrix(digit_images())
    picked = base[rng.integers(0, len(base), rows)]
    return picked + rng.normal(0.0, 1e-3, picked.shape) * base.std(axis=0)


async def ready_reference(
    pool: asyncpg.Pool, store: ObjectStore, d: Deployment, rows: int, rng: np.random.Generator
) -> tuple[UUID, Reference]:
    """A reference of `rows` digit-like feature rows made the deployment's, as a finished reference job
    makes it (without computing one from images): its id and the reference."""
    reference = build_reference(reference_features(rows, rng), sample_size=rows)
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.REFERENCES, reference.to_bytes())
    await deployments.set_training_data(pool, d.project_id, d.deployment_id, d.dataset_version_id)
    reference_id = uuid.uuid4()
    await make_reference_ready(
        pool,
        TrainingReference(
            id=reference_id,
            project_id=d.project_id,
            deployment_id=d.deployment_id,
            dataset_version_id=d.dataset_version_id,
            job_run_id=uuid.uuid4(),
            object_key=stored.key,
            detector="mahalanobis-ledoit-wolf",
            feature_names=list(IMAGE_FEATURES),
            training_size=rows,
            sample_size=rows,
        ),
    )
    return reference_id, reference


def answer(digit: int, confidence: float = 0.8) -> ClassificationPrediction:
    other = (digit + 1) % 10
    return ClassificationPrediction(classes=[str(digit), str(other)], scores=[confidence, 1.0 - confidence])


def prediction_of(
    deployment_id: UUID, pixels: RgbImage, digit: int, *, shadow_digit: int | None = None
) -> PredictionLogged:
    data = png(pixels)
    sha = hashlib.sha256(data).hexdigest()
    champion = answer(digit)
    return PredictionLogged(
        deployment_id=deployment_id,
        prediction_id=uuid4(),
        detection_type=DetectionType.CLASSIFICATION,
        image=ImageRef(
            object_key=f"images/{sha[:2]}/{sha}.png",
            sha256=sha,
            width=pixels.shape[1],
            height=pixels.shape[0],
            content_type="image/png",
        ),
        champion=RoleResult(
            prediction=champion, latency_ms=float(np.random.default_rng(digit).uniform(5, 15))
        ),
        shadow=RoleResult(prediction=answer(shadow_digit), latency_ms=20.0)
        if shadow_digit is not None
        else None,
        features=features(pixels, champion),
        image_dhash=image_dhash(pixels),
        source=PredictionSource.MONITOR_API,
        predicted_at=datetime.now(UTC),
    )


async def add_image(
    pool: asyncpg.Pool,
    store: ObjectStore,
    settings: Settings,
    project_id: UUID,
    version_id: UUID,
    data: bytes,
) -> Asset:
    """An image asset of the dataset version, stored as ingest stores an upload."""
    ref = await store_image(store, data, decode_image(data, settings.max_image_bytes))
    return await registry.add_asset(
        pool,
        project_id,
        version_id,
        object_key=ref.object_key,
        sha256=ref.sha256,
        width=ref.width,
        height=ref.height,
    )


async def add_unreadable_image(pool: asyncpg.Pool, store: ObjectStore, d: Deployment, data: bytes) -> None:
    """Bytes that are no image, stored and listed as an 8x8 image of the deployment's dataset version."""
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.IMAGES, data, "image/png")
    await registry.add_asset(
        pool,
        d.project_id,
        d.dataset_version_id,
        object_key=stored.key,
        sha256=stored.sha256,
        width=8,
        height=8,
    )
