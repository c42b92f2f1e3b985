"""The demo deployments of the local stack, in project `demo`: `digits`, a served digits classifier (its
ONNX file in the object store); `digits-detection`, the PyTorch detector of cvloop.demo.detector with its
whole loop configured (training data, feedback loop, continuous training, deploy_shadow). Seeding is
idempotent: what exists is kept, and a `deployments` event tells a running serving about it."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from cvloop.trainers.detection_data import REHEARSAL_ALIAS
from schemas.events import DeploymentChange, DeploymentKind
from schemas.predictions import DetectionType
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments, projects
from services.common.db.repositories.base import Db
from services.common.domain.deployments import Deployment
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore

from .detector import FINE_TUNING, detection_champion, detection_datasets
from .digits import LABELS, train_linear_classifier
from .loop import build
from .registration import find_or_create_labelmap, register_onnx_model

PROJECT = "demo"
LABELMAP = "digits"
MODEL = "digits-classifier"
VERSION = "1"
DEPLOYMENT = "digits"
DETECTION_DEPLOYMENT = "digits-detection"
# Reviews submitted that start a training: few enough to reach from the review page.
DETECTION_THRESHOLD = 20


@dataclass(frozen=True)
class Demo:
    project_id: UUID
    deployment_id: UUID
    model_version_id: UUID
    api_key: str


DEMO_SCOPES = [Scope.READ, Scope.WRITE, Scope.ADMIN]


def _key_file(settings: Settings) -> Path:
    return settings.state_path / "demo" / "api-key"


async def _api_key(db: Db, settings: Settings, project_id: UUID) -> str:
    """The demo key, kept in the state folder (only its hash is in Postgres). A kept key that was revoked
    or narrowed since (through the API) is replaced, so the demo always answers."""
    path = _key_file(settings)
    if path.exists():
        secret = path.read_text().strip()
        key = await projects.authenticate(db, secret)
        if key is not None and set(DEMO_SCOPES) <= set(key.scopes):
            return secret
    _, secret = await projects.create_api_key(db, project_id, "demo", DEMO_SCOPES)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secret + "\n")
    os.chmod(path, 0o600)
    return secret


async def _demo_project(db: Db, settings: Settings) -> tuple[UUID, str]:
    found = await projects.find_project(db, PROJECT)
    project_id = (found or await projects.create_project(db, PROJECT)).id
    return project_id, await _api_key(db, settings, project_id)


async def _announce(settings: Settings, deployment: Deployment) -> None:
    async with EventProducer.from_settings(settings) as producer:
        await producer.publish(Topic.DEPLOYMENTS, deployment.updated_event(DeploymentChange.CREATED))


async def seed(settings: Settings) -> Demo:
    db = await open_pool(settings.database_url, max_size=2)
    try:
        store = ObjectStore.from_settings(settings)
        await asyncio.to_thread(store.ensure_bucket)
        project_id, api_key = await _demo_project(db, settings)
        labelmap_id = await find_or_create_labelmap(db, project_id, LABELMAP, LABELS)
        model_version_id = await register_onnx_model(
            db,
            store,
            project_id,
            MODEL,
            VERSION,
            train_linear_classifier(),
            DetectionType.CLASSIFICATION,
            labelmap_id,
        )
        existing = [d for d in await deployments.list_deployments(db, project_id) if d.name == DEPLOYMENT]
        deployment = (
            existing[0]
            if existing
            else await deployments.create_deployment(
                db,
                project_id,
                DEPLOYMENT,
                kind=DeploymentKind.SERVED,
                detection_type=DetectionType.CLASSIFICATION,
                champion_model_version_id=model_version_id,
            )
        )
        await _announce(settings, deployment)
        return Demo(project_id, deployment.id, model_version_id, api_key)
    finally:
        await db.close()


async def seed_detection(settings: Settings) -> Demo:
    """The detection loop's demo, built through the api as a user builds it (cvloop.demo.loop.build): its
    base detector trained by the PyTorch trainer the first time (cached in the tools folder), the
    `rehearsal` and `test` scenes uploaded; a newcomer sends drifted scenes with `cvloop demo send` and
    drives the loop from the review page."""
    db = await open_pool(settings.database_url, max_size=2)
    try:
        project_id, api_key = await _demo_project(db, settings)
        existing = [
            d for d in await deployments.list_deployments(db, project_id) if d.name == DETECTION_DEPLOYMENT
        ]
        if existing:
            await _announce(settings, existing[0])
            champion_id = existing[0].champion_model_version_id
            assert champion_id is not None  # a served deployment always has one
            return Demo(project_id, existing[0].id, champion_id, api_key)
        champion = await asyncio.to_thread(detection_champion)
        loop = await build(
            settings,
            db,
            project_id,
            api_key,
            champion,
            name=DETECTION_DEPLOYMENT,
            threshold=DETECTION_THRESHOLD,
            parameters=FINE_TUNING,
            datasets=await asyncio.to_thread(detection_datasets),
            training_data=REHEARSAL_ALIAS,
        )
        await loop.aclose()
        return Demo(project_id, loop.deployment_id, loop.champion_id, api_key)
    finally:
        await db.close()
