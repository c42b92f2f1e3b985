"""Serving against the real servers: the gateway runs as `python -m services.serving` (the local stack's
component) on Postgres, the Kafka-protocol broker, S3 and tritonserver, and is called over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import numpy as np
import onnxruntime
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from aiokafka import ConsumerRecord
from PIL import Image

from cvloop.demo import registration
from cvloop.demo import seed as demo
from cvloop.demo.digits import (
    DETECTOR_LABELS,
    LABELS,
    TrainedModel,
    box_detector_model,
    digit_png,
    train_linear_classifier,
    train_mlp_classifier,
)
from cvloop.stack import stack
from cvloop.stack.process import wait_until
from cvloop.stack.scratch import free_port_base
from cvloop.stack.service import Serving
from cvloop.stack.settings import StackSettings
from cvloop.stack.triton import TritonServer
from schemas.api.common import ErrorBody
from schemas.api.serving import ServedPrediction
from schemas.codec import decode
from schemas.events import DeploymentChange, DeploymentKind, PredictionLogged
from schemas.features import CLASSIFICATION_FEATURES, IMAGE_FEATURES
from schemas.inference import InferRefused
from schemas.predictions import DetectionType
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments, projects
from services.common.domain.deployments import Deployment
from services.common.domain.images import decode_image
from services.common.domain.preprocess import preprocess
from services.common.kafka.consumer import create_consumer
from services.common.kafka.producer import EventProducer
from services.common.storage import ObjectStore
from services.serving.model_config import triton_model_name
from tests import samples
from tests.exposition import metric_value

WAIT_S = 60.0
MAX_IMAGE_BYTES = 200_000
SHADOW_BUDGET_MS = 1000


@dataclass
class World:
    settings: StackSettings  # the serving process's
    db: asyncpg.Pool
    store: ObjectStore
    producer: EventProducer
    project_id: UUID
    key: str
    read_only_key: str
    other_project_key: str
    digits_labelmap: UUID
    detector_labelmap: UUID
    linear: UUID  # model versions
    mlp: UUID
    detector: UUID
    blocked: UUID  # served by a python model that waits for `release_file`
    failing: UUID  # served by a python model that always fails
    no_io: UUID
    release_file: Path
    deployment_ids: dict[str, UUID]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.serving_port}"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def deploy(
        self,
        name: str,
        champion: UUID | None,
        *,
        shadow: UUID | None = None,
        kind: DeploymentKind = DeploymentKind.SERVED,
        detection_type: DetectionType = DetectionType.CLASSIFICATION,
        threshold: float = 0.0,
    ) -> UUID:
        """Create the deployment in Postgres and announce it on `deployments`, as the API does."""
        deployment = await deployments.create_deployment(
            self.db,
            self.project_id,
            name,
            kind=kind,
            detection_type=detection_type,
            champion_model_version_id=champion,
            confidence_threshold=threshold,
        )
        if shadow is not None:
            deployment = await deployments.set_shadow(self.db, self.project_id, deployment.id, shadow)
        await self.announce(deployment, DeploymentChange.CREATED)
        self.deployment_ids[name] = deployment.id
        return deployment.id

    async def announce(self, deployment: Deployment, change: DeploymentChange) -> None:
        await self.producer.publish(Topic.DEPLOYMENTS, deployment.updated_event(change))


# A python-backend stand-in with the digits classifier's tensors, loaded under a model version's Triton
# name before serving routes to it (serving then finds it ready and keeps it): one that waits for a
# file before answering, and one that fails.
BLOCKED_MODEL = """
import os, time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        deadline = time.monotonic() + 60
        while not os.path.exists({release!r}) and time.monotonic() < deadline:
            time.sleep(0.05)
        scores = np.full((1, 10), 0.1, dtype=np.float32)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("scores", scores)]) for _ in requests]
"""
FAILING_MODEL = """
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(error=pb_utils.TritonError("shadow exploded")) for _ in requests]
"""


def _preload_python_model(settings: StackSettings, model_version_id: UUID, source: str) -> None:
    name = triton_model_name(model_version_id)
    config = {
        "name": name,
        "backend": "python",
        "max_batch_size": 0,
        "input": [{"name": "image", "data_type": "TYPE_FP32", "dims": [-1, 1, 8, 8]}],
        "output": [{"name": "scores", "data_type": "TYPE_FP32", "dims": [-1, 10]}],
        "instance_group": [{"kind": "KIND_CPU", "count": 1}],
    }
    with grpcclient.InferenceServerClient(settings.triton_grpc_url) as triton:
        triton.load_model(
            name, config=json.dumps(config), files={"file:1/model.py": textwrap.dedent(source).encode()}
        )


@pytest.fixture(scope="module")
async def world(
    postgres_settings: StackSettings,
    kafka_settings: StackSettings,
    s3_settings: StackSettings,
    triton_settings: StackSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    if triton_settings.is_external("triton"):
        pytest.skip("the stand-in shadows are loaded into the local tritonserver")
    settings = triton_settings.model_copy(
        update={
            "max_image_bytes": MAX_IMAGE_BYTES,
            "serving_shadow_budget_ms": SHADOW_BUDGET_MS,
            "serving_reconcile_interval_s": 0.5,
        }
    )
    db = await open_pool(settings.database_url)
    store = ObjectStore.from_settings(settings)
    store.ensure_bucket()
    project = await projects.create_project(db, f"serving-{uuid4()}")
    other = await projects.create_project(db, f"serving-other-{uuid4()}")
    _, key = await projects.create_api_key(db, project.id, "rw", [Scope.READ, Scope.WRITE])
    _, read_only = await projects.create_api_key(db, project.id, "ro", [Scope.READ])
    _, other_key = await projects.create_api_key(db, other.id, "rw", [Scope.WRITE])
    digits = await registration.find_or_create_labelmap(db, project.id, "digits", LABELS)
    boxes = await registration.find_or_create_labelmap(db, project.id, "boxes", DETECTOR_LABELS)
    linear, mlp = train_linear_classifier(), train_mlp_classifier()
    classification = DetectionType.CLASSIFICATION

    async def register(
        name: str, model: TrainedModel, kind: DetectionType = classification, labelmap: UUID | None = digits
    ) -> UUID:
        return await registration.register_onnx_model(db, store, project.id, name, "1", model, kind, labelmap)

    no_io = TrainedModel(linear.onnx, None, LABELS, linear.accuracy)  # type: ignore[arg-type]
    release = tmp_path_factory.mktemp("serving") / "release-blocked-shadow"
    async with EventProducer.from_settings(settings) as producer:
        built = World(
            settings=settings,
            db=db,
            store=store,
            producer=producer,
            project_id=project.id,
            key=key,
            read_only_key=read_only,
            other_project_key=other_key,
            digits_labelmap=digits,
            detector_labelmap=boxes,
            linear=await register("linear", linear),
            mlp=await register("mlp", mlp),
            detector=await register("detector", box_detector_model(), DetectionType.DETECTION, boxes),
            blocked=await register("blocked", linear),
            failing=await register("failing", mlp),
            no_io=await register("no-io", no_io),
            release_file=release,
            deployment_ids={},
        )
        _preload_python_model(settings, built.blocked, BLOCKED_MODEL.format(release=str(release)))
        _preload_python_model(settings, built.failing, FAILING_MODEL)
        # Deployed before serving starts: read from Postgres at start.
        await built.deploy("champion-and-shadow", built.linear, shadow=built.mlp)
        serving = Serving(settings)
        serving.start()
        try:
            yield built
        finally:
            release.touch()
            serving.stop()
            await db.close()


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=world.url, headers=world.headers(), timeout=30) as http:
        yield http


def _decoded(records: list[ConsumerRecord[bytes, bytes]]) -> Iterator[PredictionLogged]:
    """The events among the records; the topic is shared with tests that publish invalid ones."""
    for record in records:
        try:
            yield decode(Topic.PREDICTIONS, record.value)
        except ValueError:
            continue


async def _events(settings: StackSettings, prediction_ids: set[UUID]) -> dict[UUID, PredictionLogged]:
    """The `predictions` events of these prediction ids (waits until all have arrived)."""
    consumer = create_consumer(settings, f"test-{uuid4()}", Topic.PREDICTIONS)
    await consumer.start()
    found: dict[UUID, PredictionLogged] = {}
    try:
        async with asyncio.timeout(WAIT_S):
            while not prediction_ids <= found.keys():
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for event in _decoded(records):
                        if event.prediction_id in prediction_ids:
                            found[event.prediction_id] = event
    finally:
        await consumer.stop()
    return found


async def _events_of(settings: StackSettings, deployment_id: UUID, until: UUID) -> list[PredictionLogged]:
    """Every event of the deployment published before the one of prediction `until` (included)."""
    consumer = create_consumer(settings, f"test-{uuid4()}", Topic.PREDICTIONS)
    await consumer.start()
    found: list[PredictionLogged] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while not any(e.prediction_id == until for e in found):
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found += [e for e in _decoded(records) if e.deployment_id == deployment_id]
    finally:
        await consumer.stop()
    return found


async def _until_served(client: httpx.AsyncClient, deployment_id: UUID) -> dict[str, Any]:
    """Poll until the deployment answers (it was announced on `deployments` a moment ago)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            response = await client.post(f"/v1/deployments/{deployment_id}/predict", content=digit_png(0))
            if response.status_code == 200:
                return response.json()
            assert response.status_code in (404, 503), response.text
            await asyncio.sleep(0.2)


def _reference_scores(model: TrainedModel, png: bytes) -> np.ndarray:
    """The model run by onnxruntime here, on serving's preprocessing of the same image."""
    session = onnxruntime.InferenceSession(model.onnx)
    tensor = preprocess(decode_image(png, MAX_IMAGE_BYTES).pixels, model.io)
    return session.run(None, {"image": tensor})[0][0]


def _png(color: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_champion_answers_and_the_event_holds_both(world: World, client: httpx.AsyncClient) -> None:
    deployment = world.deployment_ids["champion-and-shadow"]
    linear = train_linear_classifier()
    answers: dict[UUID, tuple[bytes, dict[str, Any]]] = {}
    for index in range(12):
        png = digit_png(index)
        if index % 4 == 0:  # multipart as well as the raw body
            response = await client.post(
                f"/v1/deployments/{deployment}/predict", files={"image": ("digit.png", png, "image/png")}
            )
        else:
            response = await client.post(f"/v1/deployments/{deployment}/predict", content=png)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version_id"] == str(world.linear)
        expected = _reference_scores(linear, png)
        prediction = body["prediction"]
        assert prediction["classes"][0] == LABELS[int(np.argmax(expected))]
        by_label = dict(zip(prediction["classes"], prediction["scores"], strict=True))
        np.testing.assert_allclose([by_label[label] for label in LABELS], expected, rtol=1e-4, atol=1e-6)
        assert body["latency_ms"] > 0
        answers[UUID(body["prediction_id"])] = (png, body)

    events = await _events(world.settings, set(answers))
    for prediction_id, (png, body) in answers.items():
        event = events[prediction_id]
        assert event.deployment_id == deployment
        assert event.source == "serving"
        assert event.champion.model_version_id == world.linear
        assert event.champion.prediction.model_dump(mode="json") == body["prediction"]
        assert event.shadow is not None and event.shadow_error is None
        assert event.shadow.model_version_id == world.mlp
        assert event.shadow.latency_ms > 0
        assert set(event.features) == set(IMAGE_FEATURES) | set(CLASSIFICATION_FEATURES)
        assert event.image.sha256 == hashlib.sha256(png).hexdigest()
        assert (event.image.width, event.image.height) == (32, 32)
        assert world.store.get_bytes(event.image.object_key) == png

    metrics = (await client.get("/metrics")).text
    assert (
        f'cvloop_serving_shadow_agreement_count{{deployment="{deployment}",model_version="{world.mlp}"}}'
        in metrics
    )
    assert 'role="shadow"' in metrics


async def test_promoting_the_shadow_during_a_stream_switches_without_failures(
    world: World, client: httpx.AsyncClient
) -> None:
    # Its own copy of the champion, so that promotion leaves it unused and it leaves Triton.
    retiring = await registration.register_onnx_model(
        world.db,
        world.store,
        world.project_id,
        "retiring",
        "1",
        train_linear_classifier(),
        DetectionType.CLASSIFICATION,
        world.digits_labelmap,
    )
    deployment = await world.deploy("promoted", retiring, shadow=world.mlp)  # announced after start
    await _until_served(client, deployment)
    versions: list[str] = []
    statuses: list[int] = []
    promoted = asyncio.Event()
    enough = asyncio.Event()  # requests answered before the promotion

    async def stream(worker: int) -> None:
        after = 0
        while after < 15:
            response = await client.post(f"/v1/deployments/{deployment}/predict", content=digit_png(worker))
            statuses.append(response.status_code)
            if response.status_code == 200:
                versions.append(response.json()["model_version_id"])
            if len(versions) >= 20:
                enough.set()
            if promoted.is_set() and versions[-1:] == [str(world.mlp)]:
                after += 1

    async def promote() -> None:
        await enough.wait()
        updated = await deployments.promote_shadow(world.db, world.project_id, deployment)
        await world.announce(updated, DeploymentChange.SHADOW_PROMOTED)
        promoted.set()

    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(promote(), *(stream(worker) for worker in range(4)))
    assert set(statuses) == {200}
    assert versions[0] == str(retiring) and versions[-1] == str(world.mlp)
    switch = versions.index(str(world.mlp))
    assert set(versions[:switch]) == {str(retiring)}
    with httpclient.InferenceServerClient(world.settings.triton_url) as triton:
        assert wait_until(lambda: not triton.is_model_ready(triton_model_name(retiring)), timeout=WAIT_S)
        assert triton.is_model_ready(triton_model_name(world.mlp))


async def test_a_blocked_or_failing_shadow_leaves_the_champion_alone(
    world: World, client: httpx.AsyncClient
) -> None:
    alone = await world.deploy("alone", world.linear)
    blocked = await world.deploy("blocked-shadow", world.linear, shadow=world.blocked)
    failing = await world.deploy("failing-shadow", world.linear, shadow=world.failing)
    for deployment in (alone, blocked, failing):
        await _until_served(client, deployment)
    png = digit_png(7)
    reference = (await client.post(f"/v1/deployments/{alone}/predict", content=png)).json()

    with_blocked = await client.post(f"/v1/deployments/{blocked}/predict", content=png)
    # The shadow is still waiting for its release file: the champion answered without waiting for it.
    assert not world.release_file.exists()
    with_failing = await client.post(f"/v1/deployments/{failing}/predict", content=png)
    for response in (with_blocked, with_failing):
        assert response.status_code == 200, response.text
        assert response.json()["prediction"] == reference["prediction"]
        assert response.json()["model_version_id"] == reference["model_version_id"]

    blocked_id, failing_id = (
        UUID(with_blocked.json()["prediction_id"]),
        UUID(with_failing.json()["prediction_id"]),
    )
    events = await _events(world.settings, {blocked_id, failing_id})
    world.release_file.touch()
    assert events[blocked_id].shadow is None
    assert f"within its {SHADOW_BUDGET_MS} ms budget" in (events[blocked_id].shadow_error or "")
    assert events[failing_id].shadow is None
    assert "shadow exploded" in (events[failing_id].shadow_error or "")
    for event in events.values():
        assert event.champion.prediction.model_dump(mode="json") == reference["prediction"]
    metrics = (await client.get("/metrics")).text
    assert (
        metric_value(metrics, "cvloop_serving_shadow_dropped_total", deployment=blocked, reason="budget") >= 1
    )


async def test_detection_boxes_are_thresholded_and_labelled(world: World, client: httpx.AsyncClient) -> None:
    deployment = await world.deploy(
        "boxes", world.detector, detection_type=DetectionType.DETECTION, threshold=0.5
    )
    await _until_served(client, deployment)
    # White: each box scores its weight (0.9, 0.6, 0.2); the last is under the threshold.
    response = await client.post(
        f"/v1/deployments/{deployment}/predict", content=_png((255, 255, 255), (64, 48))
    )
    assert response.status_code == 200, response.text
    prediction = response.json()["prediction"]
    assert prediction["type"] == "detection"
    assert prediction["classes"] == ["digit", "stroke"]
    np.testing.assert_allclose(prediction["scores"], [0.9, 0.6], rtol=1e-5)
    np.testing.assert_allclose(
        prediction["boxes"], [[6.4, 4.8, 38.4, 28.8], [32.0, 24.0, 57.6, 43.2]], rtol=1e-5
    )
    # Mid grey scores them 0.45, 0.3, 0.1: all under the threshold.
    grey = await client.post(f"/v1/deployments/{deployment}/predict", content=_png((128, 128, 128), (20, 10)))
    assert grey.json()["prediction"]["boxes"] == []
    events = await _events(world.settings, {UUID(response.json()["prediction_id"])})
    event = next(iter(events.values()))
    assert event.detection_type == DetectionType.DETECTION
    assert event.champion.prediction.model_dump(mode="json") == prediction
    assert event.features["shape_count"] == 2.0


def test_stock_tritonclient_on_v2_gets_tritons_answer(world: World) -> None:
    deployment = str(world.deployment_ids["champion-and-shadow"])
    tensor = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    headers = world.headers()
    with (
        httpclient.InferenceServerClient(f"127.0.0.1:{world.settings.serving_port}") as gateway,
        httpclient.InferenceServerClient(world.settings.triton_url) as triton,
    ):
        assert gateway.is_model_ready(deployment, headers=headers)
        metadata = gateway.get_model_metadata(deployment, headers=headers)
        assert metadata["inputs"][0]["name"] == "image"
        for binary in (True, False):
            request = httpclient.InferInput("image", list(tensor.shape), "FP32")
            request.set_data_from_numpy(tensor, binary_data=binary)
            output = [httpclient.InferRequestedOutput("scores", binary_data=binary)]
            # A fresh dict each call: tritonclient writes the binary header length into the one it gets.
            through_gateway = gateway.infer(deployment, [request], outputs=output, headers=world.headers())
            direct = triton.infer(triton_model_name(world.linear), [request], outputs=output)
            np.testing.assert_array_equal(through_gateway.as_numpy("scores"), direct.as_numpy("scores"))
        with pytest.raises(Exception, match="Bearer"):
            gateway.infer(deployment, [request])


async def test_bad_input_gets_its_error_and_publishes_nothing(
    world: World, client: httpx.AsyncClient
) -> None:
    deployment = await world.deploy("bad-input", world.linear)
    monitoring = await world.deploy("monitoring", world.linear, kind=DeploymentKind.MONITORING_ONLY)
    unservable = await world.deploy("unservable", world.no_io)
    await _until_served(client, deployment)
    sent_before = len(await _events_of(world.settings, deployment, await _predict_ok(client, deployment, 2)))

    async def refused(path: UUID, status: int, field: str, **kwargs: Any) -> str:
        response = await client.post(f"/v1/deployments/{path}/predict", **kwargs)
        assert response.status_code == status, response.text
        assert response.json()["errors"][0]["field"] == field
        return response.json()["detail"]

    assert "JPEG, PNG or WebP" in await refused(deployment, 415, "image", content=b"not an image at all")
    await refused(deployment, 415, "image", content=digit_png(1)[:40])  # truncated
    await refused(deployment, 413, "image", content=b"\x89PNG" + bytes(MAX_IMAGE_BYTES))
    await refused(deployment, 422, "image", files={"picture": ("x.png", digit_png(1), "image/png")})
    await refused(uuid4(), 404, "deployment_id", content=digit_png(1))
    assert "monitoring-only" in await refused(monitoring, 409, "deployment_id", content=digit_png(1))
    # Announced on its own partition: known to serving a moment after the served one, perhaps.
    async with asyncio.timeout(WAIT_S):
        while True:
            if (await client.post(f"/v1/deployments/{unservable}/predict", content=b"")).status_code != 404:
                break
            await asyncio.sleep(0.2)
    assert "no io settings" in await refused(unservable, 503, "deployment_id", content=digit_png(1))
    assert "Bearer" in await refused(
        deployment, 401, "authorization", content=digit_png(1), headers={"Authorization": ""}
    )
    await refused(
        deployment, 403, "authorization", content=digit_png(1), headers=world.headers(world.read_only_key)
    )
    await refused(
        deployment, 404, "deployment_id", content=digit_png(1), headers=world.headers(world.other_project_key)
    )

    events = await _events_of(world.settings, deployment, await _predict_ok(client, deployment, 3))
    assert len(events) == sent_before + 1  # only the two good requests were published
    metrics = (await client.get("/metrics")).text
    assert (
        metric_value(metrics, "cvloop_serving_errors_total", deployment=monitoring, reason="monitoring_only")
        == 1
    )


async def _predict_ok(client: httpx.AsyncClient, deployment: UUID, digit: int) -> UUID:
    response = await client.post(f"/v1/deployments/{deployment}/predict", content=digit_png(digit))
    assert response.status_code == 200, response.text
    return UUID(response.json()["prediction_id"])


async def test_limits_at_the_door_answer_4xx_naming_the_field(
    world: World, client: httpx.AsyncClient
) -> None:
    """What ingest's INSERT would refuse (a NUL in a tag) and what would stall every request (a pixel
    bomb decoded full size) are refused before any work."""
    deployment = await world.deploy("limits", world.linear)
    await _until_served(client, deployment)
    path = f"/v1/deployments/{deployment}/predict"
    for tags, field in (
        (["a\x00b"], "query.tags[0]"),
        (["x" * 129], "query.tags[0]"),
        (["t"] * 65, "query.tags"),
    ):
        answer = await client.post(path, params={"tags": tags}, content=digit_png(4))
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == field, answer.text
    bomb = await client.post(path, content=samples.pixel_bomb(8000, 8000))
    assert bomb.status_code == 413, bomb.text  # decoding its truncated data would answer 415
    assert bomb.json()["errors"][0]["field"] == "image"
    assert "8000x8000" in bomb.json()["detail"]


async def test_an_image_served_again_answers_the_prediction_that_exists(
    world: World, client: httpx.AsyncClient
) -> None:
    """A deployment keeps one predicted asset per image: the id served the second time is the first's,
    and it resolves once ingest persisted the event."""
    deployment = await world.deploy("repeated", world.linear)
    await _until_served(client, deployment)
    png = digit_png(41)
    ids = {await _predict_ok_with(client, deployment, png) for _ in range(3)}
    assert len(ids) == 1
    for health in stack.up(world.settings, ["ingest"]):
        assert health.ok, health
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                if await world.db.fetchval("SELECT 1 FROM predicted_assets WHERE prediction_id = $1", *ids):
                    break
                await asyncio.sleep(0.2)
        rows = await world.db.fetch(
            "SELECT prediction_id FROM predicted_assets WHERE deployment_id = $1 AND image_sha256 = $2",
            deployment,
            hashlib.sha256(png).hexdigest(),
        )
        assert [row["prediction_id"] for row in rows] == list(ids)
    finally:
        for _ in stack.down(world.settings, ["ingest"]):
            pass


async def _predict_ok_with(client: httpx.AsyncClient, deployment: UUID, png: bytes) -> UUID:
    response = await client.post(f"/v1/deployments/{deployment}/predict", content=png)
    assert response.status_code == 200, response.text
    return ServedPrediction.model_validate(response.json()).prediction_id  # the documented answer


@pytest.mark.parametrize(
    ("body", "headers", "field", "problem"),
    [
        pytest.param(b"", {}, "body", "empty", id="empty-body"),
        pytest.param(b"{}", {}, "body.inputs", "required", id="no-inputs"),
        pytest.param(b'{"inputs": [', {}, "body", "Invalid JSON", id="malformed-json"),
        pytest.param(
            json.dumps(
                {"inputs": [{"name": "image", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5]}]}
            ),
            {},
            "body.inputs[0]",
            "holds 1 elements",
            id="data-does-not-fit-the-shape",
        ),
        pytest.param(
            json.dumps(
                {"inputs": [{"name": "image", "shape": [1, 1, 8.0, 8], "datatype": "FP32", "data": []}]}
            ),
            {},
            "body.inputs[0].shape[2]",
            "integer",
            id="fractional-looking-dimension",  # Triton answers 500 to 8.0
        ),
        pytest.param(
            json.dumps(
                {"inputs": [{"name": "image", "shape": [1, 1, 8, 8], "datatype": "FP33", "data": [0]}]}
            ),
            {},
            "body.inputs[0].datatype",
            "FP32",
            id="unknown-datatype",
        ),
        pytest.param(
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "image",
                            "shape": [1, 1, 8, 8],
                            "datatype": "FP32",
                            "parameters": {"binary_data_size": 256},
                        }
                    ]
                }
            ),
            {"Inference-Header-Content-Length": "10000"},
            "body",
            "Inference-Header-Content-Length",
            id="binary-header-longer-than-the-body",
        ),
        pytest.param(
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "image",
                            "shape": [1, 1, 8, 8],
                            "datatype": "FP32",
                            "parameters": {"binary_data_size": 256},
                        }
                    ]
                }
            ),
            {},
            "body",
            "binary tensors declare 256 bytes",
            id="binary-data-missing",
        ),
    ],
)
async def test_v2_infer_answers_400_for_a_malformed_request(
    world: World,
    client: httpx.AsyncClient,
    body: bytes | str,
    headers: dict[str, str],
    field: str,
    problem: str,
) -> None:
    deployment = world.deployment_ids["champion-and-shadow"]
    answer = await client.post(
        f"/v2/models/{deployment}/infer",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )
    assert answer.status_code == 400, answer.text
    refused = InferRefused.model_validate(answer.json())  # as documented: tritonclient reads `error`
    common = ErrorBody.model_validate({"detail": refused.detail, "errors": refused.errors})
    assert common.errors[0].field == field, answer.text
    assert problem in common.detail and refused.error == common.detail, answer.text


async def test_demo_seeding_is_idempotent_and_served(world: World) -> None:
    first = await demo.seed(world.settings)
    again = await demo.seed(world.settings)
    assert first == again
    async with httpx.AsyncClient(base_url=world.url, headers=world.headers(first.api_key)) as http:
        body = await _until_served(http, first.deployment_id)
    assert body["model_version_id"] == str(first.model_version_id)
    assert body["prediction"]["classes"][0] == "0"

    # Someone narrowed the demo key through the API (the fuzzer does): the next seed replaces it.
    kept = await projects.authenticate(world.db, first.api_key)
    assert kept is not None
    await projects.set_api_key_scopes(world.db, first.project_id, kept.id, [Scope.READ])
    replaced = await demo.seed(world.settings)
    assert replaced.api_key != first.api_key
    key = await projects.authenticate(world.db, replaced.api_key)
    assert key is not None and set(demo.DEMO_SCOPES) <= set(key.scopes)


@pytest.fixture
def outage(world: World, tmp_path: Path) -> Iterator[tuple[StackSettings, TritonServer]]:
    """A second serving process with a Triton of its own, which the test starts and stops."""
    triton_settings = StackSettings(
        state_dir=tmp_path / "triton", tools_dir_setting=world.settings.tools_path, port_base=free_port_base()
    )
    settings = world.settings.sharing_servers(
        state_dir=tmp_path / "serving",
        port_base=free_port_base(triton_settings.port_base + 10),
        triton_url_setting=triton_settings.triton_url,
        triton_grpc_url_setting=triton_settings.triton_grpc_url,
    )
    triton = TritonServer(triton_settings)
    serving = Serving(settings)
    try:
        yield settings, triton
    finally:
        serving.stop()
        triton.stop()


async def test_triton_outage_answers_503_and_recovers(
    world: World, outage: tuple[StackSettings, TritonServer]
) -> None:
    settings, triton = outage
    deployment = world.deployment_ids["champion-and-shadow"]
    path = f"/v1/deployments/{deployment}/predict"
    Serving(settings).start()  # its Triton is down: it starts anyway
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.serving_port}", headers=world.headers()
    ) as http:
        response = await http.post(path, content=digit_png(3))
        assert response.status_code == 503
        assert "unreachable" in response.json()["detail"]

        triton.start()
        assert (await _until_served(http, deployment))["model_version_id"] == str(world.linear)

        triton.stop()
        response = await http.post(path, content=digit_png(3))
        assert response.status_code == 503, response.text
        assert "unreachable" in response.json()["detail"]
        metrics = (await http.get("/metrics")).text
        assert (
            metric_value(
                metrics, "cvloop_serving_errors_total", deployment=deployment, reason="triton_unavailable"
            )
            >= 2
        )
        assert metric_value(metrics, "cvloop_serving_triton_unavailable_total") >= 1

        triton.start()  # a fresh Triton has no models: serving loads them again
        assert (await _until_served(http, deployment))["model_version_id"] == str(world.linear)
