"""The retraining loop driven as its users drive it, through the running services (api, serving, ingest,
pipeline, job runner) on the real broker, Postgres, S3 and tritonserver: shared by the end-to-end test
and bench/retraining_loop.py.

A project gets the digits demo model (cvloop/demo) as champion of a served deployment, a feedback-loop
dataset version, a held-out `test` dataset version, continuous training with threshold N and continuous
deployment `deploy_shadow`. N digit images are predicted through serving, reviewed and submitted one by
one; the loop then trains once, exports the new version and deploys it as shadow, and serving answers
with it beside the champion.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx

from cvloop.demo import seed as demo
from cvloop.demo.digits import LABELS, digit_label, digit_png, split_indices, train_linear_classifier
from cvloop.demo.polling import until
from cvloop.stack.settings import sdk_settings
from schemas.codec import decode
from schemas.events import PredictionLogged
from schemas.predictions import DetectionType
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.db.repositories import projects
from services.common.kafka.consumer import create_consumer
from services.common.settings import Settings
from services.common.storage import ObjectStore

SERVICES = ["ingest", "api", "pipeline", "job_runner", "serving"]


def digit_split() -> tuple[list[int], list[int]]:
    """Indices of the digits the demo champion learnt from and of those it did not: reviews and the test
    set use the held-out ones, the probes that only watch serving use the others."""
    learnt, held_out = split_indices()
    return [int(i) for i in learnt], [int(i) for i in held_out]


@dataclass(frozen=True)
class Loop:
    """A deployment set up for the loop, and clients of the api and serving with its project's key."""

    settings: Settings
    db: asyncpg.Pool
    api: httpx.AsyncClient
    serving: httpx.AsyncClient
    project_id: UUID
    deployment_id: UUID
    champion_id: UUID
    labelmap_id: UUID
    feedback_id: UUID
    test_id: UUID
    threshold: int
    parameters: dict[str, Any]

    @property
    def request_id(self) -> str:
        return f"{self.deployment_id}:1"

    async def predict(self, index: int) -> dict[str, Any]:
        answer = await self.serving.post(
            f"/v1/deployments/{self.deployment_id}/predict",
            files={"image": ("digit.png", digit_png(index), "image/png")},
        )
        answer.raise_for_status()
        return answer.json()

    async def deployment(self) -> dict[str, Any]:
        answer = await self.api.get(f"/v1/deployments/{self.deployment_id}")
        answer.raise_for_status()
        return answer.json()

    async def review_and_submit(self, indices: list[int], timeout_s: float) -> datetime:
        """Predict, review (the true digit) and submit each image, one submission at a time; answers when
        the last submission was accepted (the N-th, with threshold N)."""
        predicted = [(await self.predict(i))["prediction_id"] for i in indices]
        for prediction_id, index in zip(predicted, indices, strict=True):

            async def recorded(prediction_id: str = prediction_id) -> bool | None:
                found = await self.api.get(f"/v1/predictions/{prediction_id}")
                return True if found.status_code == 200 else None

            await until(recorded, f"prediction {prediction_id} recorded by ingest", timeout_s)
            review = {"type": "classification", "classes": [digit_label(index)], "scores": [1.0]}
            answer = await self.api.put(f"/v1/predictions/{prediction_id}/review", json={"review": review})
            answer.raise_for_status()
        submitted_at = datetime.now(UTC)
        for prediction_id in predicted:
            answer = await self.api.post(
                f"/v1/deployments/{self.deployment_id}/predictions/submit",
                json={"dataset_version_id": str(self.feedback_id), "prediction_ids": [prediction_id]},
            )
            answer.raise_for_status()
            submitted_at = datetime.now(UTC)
        return submitted_at

    async def shadow_version(self, timeout_s: float) -> UUID:
        """The version the pipeline deployed as shadow."""

        async def deployed() -> UUID | None:
            shadow = (await self.deployment())["shadow_model_version_id"]
            return UUID(shadow) if shadow else None

        return await until(deployed, "the new version deployed as shadow", timeout_s)

    async def first_shadow_answer(self, version_id: UUID, indices: list[int], timeout_s: float) -> datetime:
        """When serving first answered with `version_id` as shadow: images are predicted every 0.2 s while
        the `predictions` topic is read for this deployment's first event carrying that shadow."""
        consumer = create_consumer(self.settings, f"loop-{uuid4()}", Topic.PREDICTIONS)
        await consumer.start()

        async def keep_predicting() -> None:
            for n in range(10**9):
                await self.predict(indices[n % len(indices)])
                await asyncio.sleep(0.2)

        predicting = asyncio.create_task(keep_predicting())
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    for records in (await consumer.getmany(timeout_ms=200)).values():
                        for record in records:
                            if record.key != str(self.deployment_id).encode():
                                continue
                            event: PredictionLogged = decode(Topic.PREDICTIONS, record.value)
                            if event.shadow is not None and event.shadow.model_version_id == version_id:
                                return event.predicted_at
        finally:
            predicting.cancel()
            await asyncio.gather(predicting, return_exceptions=True)
            await consumer.stop()

    async def training_run(self) -> asyncpg.Record:
        """The pipeline's training job's one run (status, started_at, finished_at)."""
        rows = await self.db.fetch(
            """SELECT r.* FROM job_runs r JOIN jobs j ON j.id = r.job_id
               WHERE j.request_id LIKE $1 ORDER BY r.created_at""",
            f"{self.deployment_id}:%",
        )
        assert len(rows) == 1, f"expected one training run, found {len(rows)}"
        return rows[0]

    async def trainer_metrics(self, experiment_id: UUID) -> dict[str, float]:
        """The trainer's metrics.json artifact (accuracy before and after on `test`)."""
        answer = await self.api.get(f"/v1/experiments/{experiment_id}")
        answer.raise_for_status()
        artifacts = {a["name"]: a["object_key"] for a in answer.json()["artifacts"]}
        store = ObjectStore.from_settings(self.settings)
        return json.loads(await asyncio.to_thread(store.get_bytes, artifacts["metrics.json"]))

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.serving.aclose()


@asynccontextmanager
async def set_up(
    settings: Settings, *, threshold: int, test_images: int, parameters: dict[str, Any]
) -> AsyncIterator[Loop]:
    """The loop (`_build`) on a pool of its own: `threshold` held-out digits are for the reviews, the
    next `test_images` make the `test` dataset version."""
    db = await open_pool(settings.database_url)
    _, held_out = digit_split()
    try:
        loop = await _build(
            settings, db, threshold, held_out[threshold : threshold + test_images], parameters
        )
        try:
            yield loop
        finally:
            await loop.aclose()
    finally:
        await db.close()


async def _build(
    settings: Settings, db: asyncpg.Pool, threshold: int, test_images: list[int], parameters: dict[str, Any]
) -> Loop:
    """The project (its key made as `cvloop projects create` makes it), the demo champion, the datasets,
    the deployment and its pipeline settings, the last through the api as a user sets them."""
    project = await projects.create_project(db, f"loop-{uuid4().hex[:8]}")
    _, key = await projects.create_api_key(db, project.id, "loop", [Scope.READ, Scope.WRITE, Scope.ADMIN])
    store = ObjectStore.from_settings(settings)
    await asyncio.to_thread(store.ensure_bucket)
    labelmap_id = await demo.find_or_create_labelmap(db, project.id, demo.LABELMAP, LABELS)
    champion_id = await demo.register_onnx_model(
        db,
        store,
        project.id,
        demo.MODEL,
        demo.VERSION,
        train_linear_classifier(),
        DetectionType.CLASSIFICATION,
        labelmap_id,
    )
    headers = {"Authorization": f"Bearer {key}"}
    api = httpx.AsyncClient(base_url=sdk_settings(settings).api_url, headers=headers, timeout=60)
    serving = httpx.AsyncClient(base_url=sdk_settings(settings).serving_url, headers=headers, timeout=60)

    async def call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = await api.request(method, path, **kwargs)
        if answer.status_code >= 400:
            raise AssertionError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else {}

    dataset = await call("POST", "/v1/datasets", json={"name": "digits", "description": "reviewed digits"})
    versions = {
        name: (
            await call(
                "POST",
                f"/v1/datasets/{dataset['id']}/versions",
                json={"version": name, "detection_type": "classification", "labelmap_id": str(labelmap_id)},
            )
        )["id"]
        for name in ("feedback", "test")
    }
    for index in test_images:
        uploaded = await call(
            "POST",
            "/v1/uploads",
            params={"kind": "images"},
            files={"file": ("digit.png", digit_png(index), "image/png")},
        )
        annotation = {"type": "classification", "classes": [digit_label(index)], "scores": [1.0]}
        await call(
            "POST",
            f"/v1/dataset-versions/{versions['test']}/assets",
            json={"object_key": uploaded["object_key"], "annotation": annotation},
        )
    deployment = await call(
        "POST",
        "/v1/deployments",
        json={"name": "digits", "kind": "served", "model_version_id": str(champion_id)},
    )
    path = f"/v1/deployments/{deployment['id']}"
    await call("PUT", f"{path}/feedback-loop/{versions['feedback']}")
    await call(
        "PUT",
        f"{path}/continuous-training",
        json={
            "dataset_versions": {"feedback": versions["feedback"], "test": versions["test"]},
            "training_parameters": parameters,
            "threshold": threshold,
            "active": True,
        },
    )
    await call("PUT", f"{path}/continuous-deployment", json={"policy": "deploy_shadow", "active": True})
    return Loop(
        settings=settings,
        db=db,
        api=api,
        serving=serving,
        project_id=project.id,
        deployment_id=UUID(deployment["id"]),
        champion_id=champion_id,
        labelmap_id=labelmap_id,
        feedback_id=UUID(versions["feedback"]),
        test_id=UUID(versions["test"]),
        threshold=threshold,
        parameters=parameters,
    )


async def served(loop: Loop, probe: int, timeout_s: float) -> None:
    """Serving answers for the new deployment (it learnt of it from `deployments`)."""

    async def answers() -> bool | None:
        try:
            return True if (await loop.predict(probe))["model_version_id"] == str(loop.champion_id) else None
        except httpx.HTTPStatusError:
            return None

    await until(answers, "serving to answer for the deployment", timeout_s)
