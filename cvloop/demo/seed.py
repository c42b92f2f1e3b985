"""The demo deployment of the local stack: project `demo`, the digits labelmap, a digits classifier
(its ONNX file in the object store) and a served deployment `digits` with it as champion. Seeding is
idempotent: what exists is kept, and a `deployments` event tells a running serving about it."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from uuid import UUID

from schemas.events import DeploymentChange, DeploymentKind
from schemas.model_io import ModelIO
from schemas.model_version import MODEL_FILE
from schemas.object_keys import ObjectKind
from schemas.predictions import DetectionType
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments, projects, registry
from services.common.db.repositories.base import Db
from services.common.domain.registry import ModelFile, NewModelVersion
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore

from .digits import LABELS, train_linear_classifier

PROJECT = "demo"
LABELMAP = "digits"
MODEL = "digits-classifier"
VERSION = "1"
DEPLOYMENT = "digits"


@dataclass(frozen=True)
class Demo:
    project_id: UUID
    deployment_id: UUID
    model_version_id: UUID
    api_key: str


async def find_or_create_labelmap(db: Db, project_id: UUID, name: str, labels: list[str]) -> UUID:
    found = await registry.find_labelmap(db, project_id, name)
    return (found or await registry.create_labelmap(db, project_id, name, labels)).id


class OnnxModel(Protocol):
    """A model as an ONNX file and how serving calls it (a trained digits model, an architecture)."""

    @property
    def onnx(self) -> bytes: ...

    @property
    def io(self) -> ModelIO: ...


async def register_onnx_model(
    db: Db,
    store: ObjectStore,
    project_id: UUID,
    model_name: str,
    version: str,
    trained: OnnxModel,
    detection_type: DetectionType,
    labelmap_id: UUID | None,
) -> UUID:
    """The model version holding `trained` as model.onnx (stored content-addressed); created once."""
    found, _ = await registry.list_models(db, project_id, name=model_name, limit=1)
    model_id = (found[0] if found else await registry.create_model(db, project_id, model_name)).id
    # Stored first, every time: a local stack's object store forgets its objects when it restarts,
    # and training is deterministic, so the same bytes land under the key the version names.
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.MODELS, trained.onnx, "application/onnx")
    for existing in await registry.list_model_versions(db, project_id, model_id):
        if existing.version == version:
            return existing.id
    created = await registry.create_model_version(
        db,
        project_id,
        model_id,
        NewModelVersion(
            version=version,
            detection_type=detection_type,
            labelmap_id=labelmap_id,
            io=trained.io,
            files=[
                ModelFile(
                    name=MODEL_FILE, object_key=stored.key, sha256=stored.sha256, size_bytes=stored.size
                )
            ],
        ),
    )
    return created.id


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


async def seed(settings: Settings) -> Demo:
    db = await open_pool(settings.database_url, max_size=2)
    try:
        store = ObjectStore.from_settings(settings)
        await asyncio.to_thread(store.ensure_bucket)
        found = await projects.find_project(db, PROJECT)
        project_id = (found or await projects.create_project(db, PROJECT)).id
        api_key = await _api_key(db, settings, project_id)
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
        async with EventProducer.from_settings(settings) as producer:
            await producer.publish(Topic.DEPLOYMENTS, deployment.updated_event(DeploymentChange.CREATED))
        return Demo(project_id, deployment.id, model_version_id, api_key)
    finally:
        await db.close()
