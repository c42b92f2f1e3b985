"""The retraining loop driven as its users drive it, through the running services (api, serving, ingest,
pipeline, job runner) on the real broker, Postgres, S3 and tritonserver: shared by the end-to-end tests,
the benches and the demo deployments `cvloop up` seeds.

A project gets a champion (the digits classifier, or the PyTorch detector of cvloop.demo.detector) on a
served deployment, a feedback-loop dataset version, dataset versions of reviewed images (a held-out `test`,
a `rehearsal` of old data, training data the scores are measured against), continuous training with
threshold N and continuous deployment `deploy_shadow`. N images are predicted through serving, reviewed
(the truth: a class, or boxes edited to the right ones) and submitted; the loop then trains once, exports
the new version and deploys it as shadow, and serving answers with it beside the champion.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx

from cvloop.demo.digits import LABELS, digit_label, digit_png, split_indices, train_linear_classifier
from cvloop.demo.polling import until
from cvloop.demo.registration import OnnxModel, find_or_create_labelmap, register_onnx_model
from cvloop.stack.settings import sdk_settings
from schemas.codec import decode
from schemas.events import PredictionLogged
from schemas.job_workspace import TEST_ALIAS
from schemas.predictions import ClassificationPrediction, DetectionType, Prediction
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.db.repositories import projects
from services.common.kafka.consumer import create_consumer
from services.common.settings import Settings
from services.common.storage import ObjectStore

SERVICES = ["ingest", "api", "pipeline", "job_runner", "serving"]
FEEDBACK = "feedback"  # the feedback-loop dataset version's name and alias


@dataclass(frozen=True)
class Example:
    """An image as serving receives it and its truth as a reviewer submits it."""

    image: bytes
    truth: Prediction


@dataclass(frozen=True)
class Champion:
    """The model a loop starts from: its ONNX file, the files it carries beside it (a checkpoint) and how
    it trains."""

    model_name: str
    model: OnnxModel
    detection_type: DetectionType
    labels: list[str]
    files: Mapping[str, bytes] = field(default_factory=dict)
    training: tuple[str, str | None] | None = None  # its training_entrypoint and training_image
    confidence_threshold: float = 0.0


def digit_split() -> tuple[list[int], list[int]]:
    """Indices of the digits the demo champion learnt from and of those it did not: reviews and the test
    set use the held-out ones, the probes that only watch serving use the others."""
    learnt, held_out = split_indices()
    return [int(i) for i in learnt], [int(i) for i in held_out]


def digits_champion() -> Champion:
    return Champion("digits-classifier", train_linear_classifier(), DetectionType.CLASSIFICATION, LABELS)


def digit_examples(indices: Sequence[int]) -> list[Example]:
    return [
        Example(digit_png(i), ClassificationPrediction(classes=[digit_label(i)], scores=[1.0]))
        for i in indices
    ]


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
    datasets: dict[str, UUID]  # alias: dataset version, besides the feedback loop's
    threshold: int
    parameters: dict[str, Any]

    @property
    def request_id(self) -> str:
        return f"{self.deployment_id}:1"

    @property
    def test_id(self) -> UUID:
        return self.datasets[TEST_ALIAS]

    async def predict(self, image: bytes) -> dict[str, Any]:
        answer = await self.serving.post(
            f"/v1/deployments/{self.deployment_id}/predict",
            files={"image": ("image.png", image, "image/png")},
        )
        answer.raise_for_status()
        return answer.json()

    async def deployment(self) -> dict[str, Any]:
        answer = await self.api.get(f"/v1/deployments/{self.deployment_id}")
        answer.raise_for_status()
        return answer.json()

    async def review(self, examples: Sequence[Example], timeout_s: float) -> list[str]:
        """Predict each image through serving and review its prediction as the truth (for a detection,
        the boxes a reviewer edits the predicted ones into); the prediction ids."""
        predicted = [(await self.predict(e.image))["prediction_id"] for e in examples]
        for prediction_id, example in zip(predicted, examples, strict=True):

            async def recorded(prediction_id: str = prediction_id) -> bool | None:
                found = await self.api.get(f"/v1/predictions/{prediction_id}")
                return True if found.status_code == 200 else None

            await until(recorded, f"prediction {prediction_id} recorded by ingest", timeout_s)
            review = example.truth.model_dump(mode="json")
            answer = await self.api.put(f"/v1/predictions/{prediction_id}/review", json={"review": review})
            answer.raise_for_status()
        return predicted

    async def review_and_submit(self, examples: Sequence[Example], timeout_s: float) -> datetime:
        """Review (`review`) and submit each image, one submission at a time; answers when the last
        submission was accepted (the N-th, with threshold N)."""
        predicted = await self.review(examples, timeout_s)
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

    async def first_shadow_answer(
        self, version_id: UUID, images: Sequence[bytes], timeout_s: float
    ) -> datetime:
        """When serving first answered with `version_id` as shadow: images are predicted every 0.2 s while
        the `predictions` topic is read for this deployment's first event carrying that shadow."""
        consumer = create_consumer(self.settings, f"loop-{uuid4()}", Topic.PREDICTIONS)
        await consumer.start()

        async def keep_predicting() -> None:
            for n in range(10**9):
                await self.predict(images[n % len(images)])
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

    async def artifact(self, experiment_id: UUID, name: str) -> bytes:
        """The experiment's artifact `name`, from the object store."""
        answer = await self.api.get(f"/v1/experiments/{experiment_id}")
        answer.raise_for_status()
        artifacts = {a["name"]: a["object_key"] for a in answer.json()["artifacts"]}
        store = ObjectStore.from_settings(self.settings)
        return await asyncio.to_thread(store.get_bytes, artifacts[name])

    async def trainer_metrics(self, experiment_id: UUID) -> dict[str, float]:
        """The trainer's metrics.json artifact (its figures on `test` before and after)."""
        return json.loads(await self.artifact(experiment_id, "metrics.json"))

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.serving.aclose()


@asynccontextmanager
async def set_up(
    settings: Settings,
    champion: Champion,
    *,
    threshold: int,
    parameters: dict[str, Any],
    datasets: Mapping[str, Sequence[Example]],
    training_data: str | None = None,
) -> AsyncIterator[Loop]:
    """The loop (`build`) in a project of its own (its key made as `cvloop projects create` makes it),
    on a pool of its own."""
    db = await open_pool(settings.database_url)
    try:
        project = await projects.create_project(db, f"loop-{uuid4().hex[:8]}")
        _, key = await projects.create_api_key(db, project.id, "loop", [Scope.READ, Scope.WRITE, Scope.ADMIN])
        loop = await build(
            settings,
            db,
            project.id,
            key,
            champion,
            name=champion.model_name,
            threshold=threshold,
            parameters=parameters,
            datasets=datasets,
            training_data=training_data,
        )
        try:
            yield loop
        finally:
            await loop.aclose()
    finally:
        await db.close()


async def build(
    settings: Settings,
    db: asyncpg.Pool,
    project_id: UUID,
    key: str,
    champion: Champion,
    *,
    name: str,
    threshold: int,
    parameters: dict[str, Any],
    datasets: Mapping[str, Sequence[Example]],
    training_data: str | None = None,
) -> Loop:
    """The champion registered in project `project_id`; then, through the api as a user does it with the
    key `key`: a dataset version per alias of `datasets` (its images uploaded and annotated) and an empty
    feedback loop, the served deployment `name`, its training data (the alias `training_data`, whose
    reference job the job runner runs), continuous training over every alias with threshold `threshold`
    and continuous deployment `deploy_shadow`."""
    store = ObjectStore.from_settings(settings)
    await asyncio.to_thread(store.ensure_bucket)
    labelmap_id = await find_or_create_labelmap(db, project_id, champion.model_name, champion.labels)
    champion_id = await register_onnx_model(
        db,
        store,
        project_id,
        champion.model_name,
        "1",
        champion.model,
        champion.detection_type,
        labelmap_id,
        files=champion.files,
        training=champion.training,
    )
    headers = {"Authorization": f"Bearer {key}"}
    api = httpx.AsyncClient(base_url=sdk_settings(settings).api_url, headers=headers, timeout=60)
    serving = httpx.AsyncClient(base_url=sdk_settings(settings).serving_url, headers=headers, timeout=60)

    async def call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = await api.request(method, path, **kwargs)
        if answer.status_code >= 400:
            raise AssertionError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else {}

    kind = champion.detection_type.value
    dataset = await call("POST", "/v1/datasets", json={"name": name, "description": f"{name}'s loop"})
    versions = {
        alias: (
            await call(
                "POST",
                f"/v1/datasets/{dataset['id']}/versions",
                json={"version": alias, "detection_type": kind, "labelmap_id": str(labelmap_id)},
            )
        )["id"]
        for alias in [FEEDBACK, *datasets]
    }
    for alias, examples in datasets.items():
        for example in examples:
            uploaded = await call(
                "POST",
                "/v1/uploads",
                params={"kind": "images"},
                files={"file": ("image.png", example.image, "image/png")},
            )
            await call(
                "POST",
                f"/v1/dataset-versions/{versions[alias]}/assets",
                json={
                    "object_key": uploaded["object_key"],
                    "annotation": example.truth.model_dump(mode="json"),
                },
            )
    deployment = await call(
        "POST",
        "/v1/deployments",
        json={
            "name": name,
            "kind": "served",
            "model_version_id": str(champion_id),
            "confidence_threshold": champion.confidence_threshold,
        },
    )
    path = f"/v1/deployments/{deployment['id']}"
    if training_data is not None:
        await call("PUT", f"{path}/training-data", json={"dataset_version_id": versions[training_data]})
    await call("PUT", f"{path}/feedback-loop/{versions[FEEDBACK]}")
    await call(
        "PUT",
        f"{path}/continuous-training",
        json={
            "dataset_versions": versions,
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
        project_id=project_id,
        deployment_id=UUID(deployment["id"]),
        champion_id=champion_id,
        labelmap_id=labelmap_id,
        feedback_id=UUID(versions[FEEDBACK]),
        datasets={alias: UUID(v) for alias, v in versions.items() if alias != FEEDBACK},
        threshold=threshold,
        parameters=parameters,
    )


async def served(loop: Loop, probe: bytes, timeout_s: float) -> None:
    """Serving answers for the new deployment (it learnt of it from `deployments`)."""

    async def answers() -> bool | None:
        try:
            return True if (await loop.predict(probe))["model_version_id"] == str(loop.champion_id) else None
        except httpx.HTTPStatusError:
            return None

    await until(answers, "serving to answer for the deployment", timeout_s)
