"""Rows and events the pipeline tests share: a classification deployment with a champion and continuous
training configured, submissions, and reading a topic's events for one deployment."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from aiokafka import AIOKafkaConsumer

from cvloop.demo.polling import WAIT_S
from schemas.codec import decode
from schemas.events import (
    AssetSubmitted,
    DeploymentKind,
    ImageRef,
    PredictionLogged,
    PredictionSource,
    RoleResult,
)
from schemas.model_io import ModelIO
from schemas.predictions import ClassificationPrediction, DetectionType
from schemas.topics import Topic
from schemas.triggers import TriggerPolicy
from schemas.vocabulary import DeploymentPolicy
from services.common.db.repositories import deployments, predicted_assets, projects, registry
from services.common.domain.deployments import ContinuousTraining
from services.common.domain.registry import NewModelVersion
from services.common.kafka.consumer import create_consumer
from services.common.settings import Settings

THRESHOLD = 3
LABELS = [str(d) for d in range(10)]


@dataclass(frozen=True)
class Setup:
    project_id: UUID
    deployment_id: UUID
    champion_id: UUID
    model_id: UUID
    labelmap_id: UUID
    train_id: UUID
    test_id: UUID


async def pipeline_deployment(
    pool: asyncpg.Pool,
    *,
    threshold: int = THRESHOLD,
    active: bool = True,
    policy: DeploymentPolicy = DeploymentPolicy.MANUAL,
    io: ModelIO | None = None,
    trigger_policy: TriggerPolicy | None = None,
) -> Setup:
    """A classification deployment with a champion, continuous training on two dataset versions; with
    `io`, the champion has those serving settings and the deployment is served."""
    project = await projects.create_project(pool, f"pipeline-{uuid4()}")
    labelmap = await registry.create_labelmap(pool, project.id, "digits", LABELS)
    model = await registry.create_model(pool, project.id, "digits")
    champion = await registry.create_model_version(
        pool,
        project.id,
        model.id,
        NewModelVersion(
            version="1",
            detection_type=DetectionType.CLASSIFICATION,
            labelmap_id=labelmap.id,
            training_parameters={"epochs": 5, "lr": 0.1},
            training_entrypoint="python -m my.trainer",
            io=io,
        ),
    )
    dataset = await registry.create_dataset(pool, project.id, "digits")
    versions = [
        await registry.create_dataset_version(
            pool, project.id, dataset.id, name, DetectionType.CLASSIFICATION, labelmap_id=labelmap.id
        )
        for name in ("feedback", "test")
    ]
    deployment = await deployments.create_deployment(
        pool,
        project.id,
        "line-4",
        kind=DeploymentKind.MONITORING_ONLY if io is None else DeploymentKind.SERVED,
        detection_type=DetectionType.CLASSIFICATION,
        champion_model_version_id=champion.id,
    )
    await deployments.configure_continuous_training(
        pool,
        project.id,
        deployment.id,
        ContinuousTraining(
            dataset_versions={"train": versions[0].id, "test": versions[1].id},
            parameters={"epochs": 2},
            trigger_threshold=threshold,
            trigger_policy=trigger_policy or TriggerPolicy(),
            active=active,
        ),
    )
    await deployments.configure_continuous_deployment(pool, project.id, deployment.id, policy, active=True)
    return Setup(
        project.id, deployment.id, champion.id, model.id, labelmap.id, versions[0].id, versions[1].id
    )


def submitted(setup: Setup, prediction_id: UUID | None = None) -> AssetSubmitted:
    return AssetSubmitted(
        deployment_id=setup.deployment_id,
        prediction_id=prediction_id or uuid4(),
        dataset_version_id=setup.train_id,
        asset_id=uuid4(),
    )


async def submitted_in_postgres(pool: asyncpg.Pool, setup: Setup, reviewed_as: str = "3") -> AssetSubmitted:
    """A prediction logged (the champion answers 3), reviewed as `reviewed_as` and submitted as the api
    does it; the event the api would publish."""
    digest = hashlib.sha256(os.urandom(32)).hexdigest()
    answer = ClassificationPrediction(classes=["3"], scores=[0.9])
    review = ClassificationPrediction(classes=[reviewed_as], scores=[1.0])
    logged = PredictionLogged(
        deployment_id=setup.deployment_id,
        prediction_id=uuid4(),
        detection_type=DetectionType.CLASSIFICATION,
        image=ImageRef(
            object_key=f"images/{digest[:2]}/{digest}.png",
            sha256=digest,
            width=8,
            height=8,
            content_type="image/png",
        ),
        champion=RoleResult(model_version_id=setup.champion_id, prediction=answer, latency_ms=1.0),
        source=PredictionSource.SERVING,
        predicted_at=datetime.now(UTC),
    )
    await deployments.attach_feedback_dataset_version(
        pool, setup.project_id, setup.deployment_id, setup.train_id
    )
    assert await predicted_assets.insert_prediction(pool, setup.project_id, logged)
    await predicted_assets.review(pool, setup.project_id, logged.prediction_id, review, reviewed_by="ann")
    [submission] = await predicted_assets.submit_reviewed(
        pool,
        setup.project_id,
        setup.deployment_id,
        [logged.prediction_id],
        setup.train_id,
        submitted_by="ann",
    )
    return AssetSubmitted(
        deployment_id=setup.deployment_id,
        prediction_id=logged.prediction_id,
        dataset_version_id=setup.train_id,
        asset_id=submission.asset_id,
    )


async def events_of(
    settings: Settings, topic: Topic, deployment_id: UUID, *, settle_s: float = 1.0
) -> list[Any]:
    """Every event of `topic` for the deployment so far (a fresh group reads the topic from the start)."""
    consumer = create_consumer(settings, f"test-{uuid4()}", topic)
    await consumer.start()
    found: list[Any] = []
    try:
        await read_to_end(consumer, settle_s, lambda record: found.append(record))
    finally:
        await consumer.stop()
    return [
        decode(topic, r.value) for r in found if r.key == str(deployment_id).encode() and r.value is not None
    ]


async def read_to_end(consumer: AIOKafkaConsumer, settle_s: float, keep: Callable[[Any], None]) -> None:
    """Read until every assigned partition is at its end and nothing new came for `settle_s`."""
    quiet_since = asyncio.get_running_loop().time()
    async with asyncio.timeout(WAIT_S):
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    keep(record)
            now = asyncio.get_running_loop().time()
            if batches:
                quiet_since = now
            elif consumer.assignment() and now - quiet_since >= settle_s:
                return
