"""What the serving tests share: models registered and served by a serving process of the test's own,
and a deployment's prediction, polled while serving loads its model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID, uuid4

import httpx

from cvloop.demo.registration import OnnxModel, find_or_create_labelmap, register_onnx_model
from cvloop.stack.service import Serving
from cvloop.stack.settings import StackSettings
from schemas.events import DeploymentChange, DeploymentKind
from schemas.predictions import DetectionType
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments, projects, registry
from services.common.kafka.producer import EventProducer
from services.common.servable import unservable_because
from services.common.storage import ObjectStore


class LabelledModel(OnnxModel, Protocol):
    """A model that says what it detects and with which labels (a framework's export, an architecture)."""

    @property
    def detection_type(self) -> DetectionType: ...

    @property
    def labels(self) -> list[str]: ...


M = TypeVar("M", bound=LabelledModel)


@dataclass
class ServedWorld(Generic[M]):
    settings: StackSettings
    key: str
    deployment_ids: dict[str, UUID]
    models: dict[str, M]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.serving_port}"


@asynccontextmanager
async def served_models(
    settings: StackSettings,
    project_name: str,
    models: dict[str, M],
    threshold: Callable[[M], float],
) -> AsyncIterator[ServedWorld[M]]:
    """Each model registered (and checked servable, as registration and a served deployment check it)
    in a new project, deployed as a served deployment of its name, and a serving process started."""
    db = await open_pool(settings.database_url)
    store = ObjectStore.from_settings(settings)
    store.ensure_bucket()
    project = await projects.create_project(db, f"{project_name}-{uuid4()}")
    _, key = await projects.create_api_key(db, project.id, "rw", [Scope.READ, Scope.WRITE])
    deployment_ids = {}
    async with EventProducer.from_settings(settings) as producer:
        for name, model in models.items():
            labelmap_id = await find_or_create_labelmap(db, project.id, name, model.labels)
            version_id = await register_onnx_model(
                db, store, project.id, name, "1", model, model.detection_type, labelmap_id
            )
            version = await registry.get_model_version(db, project.id, version_id)
            assert version is not None
            problem = await unservable_because(db, store, project.id, version)
            assert problem is None, f"{name}: {problem.field}: {problem}"
            deployment = await deployments.create_deployment(
                db,
                project.id,
                name,
                kind=DeploymentKind.SERVED,
                detection_type=model.detection_type,
                champion_model_version_id=version_id,
                confidence_threshold=threshold(model),
            )
            await producer.publish(Topic.DEPLOYMENTS, deployment.updated_event(DeploymentChange.CREATED))
            deployment_ids[name] = deployment.id
    serving = Serving(settings)
    serving.start()
    try:
        yield ServedWorld(settings, key, deployment_ids, models)
    finally:
        serving.stop()
        await db.close()


async def served_prediction(
    serving_url: str, key: str, deployment_id: UUID, png: bytes, *, wait_s: float
) -> dict[str, Any]:
    """The deployment's prediction of `png`; 404 and 503 (not loaded yet) are polled for `wait_s`."""
    url = f"{serving_url}/v1/deployments/{deployment_id}/predict"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=wait_s) as client:
        async with asyncio.timeout(wait_s):
            while True:
                response = await client.post(url, content=png)
                if response.status_code == 200:
                    return response.json()["prediction"]
                assert response.status_code in (404, 503), response.text
                await asyncio.sleep(0.5)
