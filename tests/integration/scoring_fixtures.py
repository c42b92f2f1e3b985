"""Rows and events the scoring tests share: a project with a classification deployment, and predictions
of digit images built with the shared schemas and feature function."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import numpy as np

from schemas.events import (
    DeploymentKind,
    ImageRef,
    PredictionLogged,
    PredictionSource,
    RoleResult,
)
from schemas.features import RgbImage, features
from schemas.predictions import ClassificationPrediction, DetectionType
from services.common.db.repositories import deployments, projects, registry
from tests.digits import png


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
        source=PredictionSource.MONITOR_API,
        predicted_at=datetime.now(UTC),
    )
