"""The ingest service as it runs (`python -m services.ingest` through the local stack) against the real
Postgres, Kafka-protocol broker and S3 server: the monitor endpoint, `predictions.raw`, persistence; and
no message, request or outbox row of one tenant stopping the others (each answered alone, dead-lettered,
4xx or parked, while the rest is stored)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import math
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import numpy as np
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from PIL import Image

from cvloop.stack import stack
from schemas import DeadLetter, PredictionLogged, RawPrediction, RoleResult, decode
from schemas.api.common import ErrorBody
from schemas.api.ingest import AlreadyLogged
from schemas.events import DeploymentKind, DeploymentUpdated, PredictionSource
from schemas.object_keys import ObjectKind
from schemas.predictions import DetectionType
from schemas.topics import MAX_MESSAGE_BYTES, Topic
from schemas.vocabulary import Scope
from services.common import outbox as relay
from services.common.db.repositories import deployments, objects, outbox, predicted_assets, projects, registry
from services.common.domain.outbox import EventTooLarge
from services.common.domain.registry import NewModelVersion
from services.common.kafka.consumer import create_consumer
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage.object_store import ObjectStore
from services.ingest.intake import raw_ids
from tests import samples

WAIT_S = 60.0
LABELS = [f"class-{i}" for i in range(3)]  # the champion's labelmap: what samples.detection answers


@pytest.fixture(scope="module")
def ingest_settings(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings
) -> Iterator[Settings]:
    """The ingest service on the session's servers, relaying unpublished events after one second."""
    started = postgres_settings.model_copy(update={"ingest_outbox_relay_after_s": 1.0})
    for health in stack.up(started, ["ingest"]):
        assert health.ok, health
    yield started
    for _ in stack.down(started, ["ingest"]):
        pass


@pytest.fixture(scope="module")
def module_settings(ingest_settings: Settings) -> Settings:
    return ingest_settings


@dataclass(frozen=True)
class World:
    project_id: UUID
    key: str
    read_key: str
    champion_id: UUID
    detection: UUID  # monitoring-only, threshold 0.5
    classification: UUID  # monitoring-only
    served: UUID
    other_project_deployment: UUID
    other_project_version: UUID  # a model version of another project


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool) -> World:
    project = await projects.create_project(pool, f"ingest-{uuid4().hex[:8]}")
    _, key = await projects.create_api_key(pool, project.id, "writer", [Scope.WRITE])
    _, read_key = await projects.create_api_key(pool, project.id, "reader", [Scope.READ])
    model = await registry.create_model(pool, project.id, "detector")
    labelmap = await registry.create_labelmap(pool, project.id, "labels", [*LABELS, "a"])
    version = await registry.create_model_version(
        pool,
        project.id,
        model.id,
        NewModelVersion(version="1", detection_type=DetectionType.DETECTION, labelmap_id=labelmap.id),
    )

    async def deployment(project_id: UUID, kind: DeploymentKind, detection_type: DetectionType) -> UUID:
        created = await deployments.create_deployment(
            pool,
            project_id,
            f"d-{uuid4().hex[:8]}",
            kind=kind,
            detection_type=detection_type,
            champion_model_version_id=version.id if project_id == project.id else None,
            confidence_threshold=0.5,
        )
        return created.id

    other = await projects.create_project(pool, f"other-{uuid4().hex[:8]}")
    other_model = await registry.create_model(pool, other.id, "detector")
    other_version = await registry.create_model_version(
        pool, other.id, other_model.id, NewModelVersion(version="1", detection_type=DetectionType.DETECTION)
    )
    return World(
        project_id=project.id,
        key=key,
        read_key=read_key,
        champion_id=version.id,
        detection=await deployment(project.id, DeploymentKind.MONITORING_ONLY, DetectionType.DETECTION),
        classification=await deployment(
            project.id, DeploymentKind.MONITORING_ONLY, DetectionType.CLASSIFICATION
        ),
        served=await deployment(project.id, DeploymentKind.SERVED, DetectionType.DETECTION),
        other_project_deployment=await deployment(
            other.id, DeploymentKind.MONITORING_ONLY, DetectionType.DETECTION
        ),
        other_project_version=other_version.id,
    )


@pytest.fixture(scope="module")
async def client(ingest_settings: Settings, world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{ingest_settings.ingest_port}",
        headers={"Authorization": f"Bearer {world.key}"},
        timeout=30,
    ) as http:
        yield http


_seed = iter(range(1, 1_000_000))


def png(width: int = 64, height: int = 48) -> bytes:
    """A PNG of random pixels, a new image on every call."""
    pixels = np.random.default_rng(next(_seed)).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def body(image: bytes | None = None, **overrides: Any) -> dict[str, Any]:
    champion = {"prediction": samples.detection((0.9, 0.2)).model_dump(mode="json"), "latency_ms": 12.0}
    return {
        "image_base64": base64.b64encode(image or png()).decode(),
        "width": 64,
        "height": 48,
        "champion": champion,
        "shadow": {"prediction": samples.detection((0.7,)).model_dump(mode="json"), "latency_ms": 20.0},
        "source": "edge-box-7",
        "tags": ["camera-3"],
        "metadata": {"site": "north"},
    } | overrides


async def _records(
    settings: Settings, topic: Topic, keep: Callable[[Any], bool], count: int = 1
) -> list[Any]:
    """Records of `topic` that `keep` accepts, read from the beginning until `count` were found."""
    consumer = create_consumer(settings, f"test-{uuid4()}", str(topic))
    await consumer.start()
    kept: list[Any] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(kept) < count:
                batches = await consumer.getmany(timeout_ms=200)
                kept += [r for records in batches.values() for r in records if keep(r)]
    finally:
        await consumer.stop()
    return kept


async def _logged(settings: Settings, prediction_id: UUID) -> PredictionLogged:
    """The prediction's event (a redelivered raw message may publish it again: the same event)."""

    def ours(record: Any) -> bool:
        return str(prediction_id).encode() in record.value

    first, *again = [
        decode(Topic.PREDICTIONS, r.value) for r in await _records(settings, Topic.PREDICTIONS, ours)
    ]
    assert all(event == first for event in again)
    return first


async def _dead_letter(settings: Settings, marker: str) -> DeadLetter:
    def ours(record: Any) -> bool:
        return marker.encode() in (DeadLetter.from_bytes(record.value).original_value or b"")

    (record,) = await _records(settings, Topic.DEADLETTER, ours)
    return DeadLetter.from_bytes(record.value)


async def _eventually_stored(pool: asyncpg.Pool, project_id: UUID, prediction_id: UUID) -> Any:
    async with asyncio.timeout(WAIT_S):
        while True:
            found = await predicted_assets.get_prediction(pool, project_id, prediction_id)
            if found is not None:
                return found
            await asyncio.sleep(0.1)


async def _outbox_drained(pool: asyncpg.Pool, event_id: UUID) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            if not await pool.fetchval("SELECT count(*) FROM outbox WHERE event_id = $1", event_id):
                return
            await asyncio.sleep(0.1)


# --- the monitor endpoint --------------------------------------------------------------------------


async def test_monitor_records_publishes_and_thresholds(
    client: httpx.AsyncClient, ingest_settings: Settings, pool: asyncpg.Pool, world: World
) -> None:
    answer = await client.post(f"/v1/deployments/{world.detection}/predictions", json=body())
    assert answer.status_code == 201, answer.text
    prediction_id = UUID(answer.json()["prediction_id"])

    event = await _logged(ingest_settings, prediction_id)
    assert event.source is PredictionSource.MONITOR_API
    assert event.champion.prediction.scores == [0.9]  # 0.2 is under the deployment's 0.5
    assert event.shadow is not None and event.shadow.latency_ms == 20.0
    assert event.champion.model_version_id == world.champion_id  # the deployment's champion
    assert {"brightness", "entropy", "shape_count"} <= set(event.features)
    assert event.metadata == {"site": "north", "source": "edge-box-7"}

    stored = await predicted_assets.get_prediction(pool, world.project_id, prediction_id)
    assert stored is not None and stored.status.value == "TO_REVIEW"
    assert stored.champion_prediction["scores"] == [0.9]
    assert stored.image_object_key == event.image.object_key
    store = ObjectStore.from_settings(ingest_settings)
    assert await asyncio.to_thread(store.exists, event.image.object_key)
    await _outbox_drained(pool, event.event_id)  # acknowledged by Kafka, so no longer kept


async def test_same_image_answers_409_with_the_existing_id_even_when_concurrent(
    client: httpx.AsyncClient, pool: asyncpg.Pool, world: World
) -> None:
    image = png()
    url = f"/v1/deployments/{world.detection}/predictions"
    answers = await asyncio.gather(*(client.post(url, json=body(image)) for _ in range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 7, [a.text for a in answers]
    (created,) = [a.json()["prediction_id"] for a in answers if a.status_code == 201]
    assert {a.json()["prediction_id"] for a in answers} == {created}
    conflict = AlreadyLogged.model_validate(next(a for a in answers if a.status_code == 409).json())
    assert conflict.errors[0].field == "image" and str(conflict.prediction_id) == created
    rows = await pool.fetchval(
        "SELECT count(*) FROM predicted_assets WHERE deployment_id = $1 AND prediction_id = $2",
        world.detection,
        UUID(created),
    )
    assert rows == 1


async def test_multipart_with_an_image_part(client: httpx.AsyncClient, world: World) -> None:
    fields = body()
    del fields["image_base64"]
    answer = await client.post(
        f"/v1/deployments/{world.detection}/predictions",
        files={"image": ("frame.png", png(), "image/png")},
        data={"data": json.dumps(fields)},
    )
    assert answer.status_code == 201, answer.text


async def test_object_key_of_a_stored_image(
    client: httpx.AsyncClient, ingest_settings: Settings, world: World, pool: asyncpg.Pool
) -> None:
    store = ObjectStore.from_settings(ingest_settings)
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.IMAGES, png(), "image/png")
    await objects.record(pool, world.project_id, [stored.key])  # as its upload through the api does
    fields = body(image_object_key=stored.key)
    del fields["image_base64"]
    answer = await client.post(f"/v1/deployments/{world.detection}/predictions", json=fields)
    assert answer.status_code == 201, answer.text
    event = await _logged(ingest_settings, UUID(answer.json()["prediction_id"]))
    assert event.image.sha256 == stored.sha256
    assert "brightness" not in event.features  # ingest never had the pixels
    assert event.features["shape_count"] == 1.0


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        pytest.param(
            {
                "champion": {
                    "prediction": {"type": "classification", "classes": ["a"], "scores": [1]},
                    "latency_ms": 1,
                }
            },
            422,
            "champion.prediction.type",
            id="type-mismatch",
        ),
        pytest.param(
            {"shadow": {"prediction": samples.detection((0.7,)).model_dump(mode="json")}},
            422,
            "shadow.latency_ms",
            id="shadow-without-latency",
        ),
        pytest.param({"width": 640}, 422, "width", id="size-is-not-the-image's"),
        pytest.param(
            {"image_base64": base64.b64encode(b"not an image").decode()},
            415,
            "image_base64",
            id="not-an-image",
        ),
        pytest.param({"image_base64": "%%%"}, 422, "image_base64", id="not-base64"),
        # What Postgres, orjson or the readers downstream would refuse, refused at the door.
        pytest.param({"tags": ["a\x00b"]}, 422, "tags[0]", id="nul-in-a-tag"),
        pytest.param({"source": "edge\x1b[31m"}, 422, "source", id="control-character"),
        pytest.param({"metadata": {"count": 2**64}}, 422, "metadata", id="int-above-int64"),
        pytest.param({"metadata": {"blob": "x" * 70_000}}, 422, "metadata", id="metadata-too-large"),
        pytest.param({"tags": [f"t{i}" for i in range(65)]}, 422, "tags", id="too-many-tags"),
        pytest.param({"width": 2**40}, 422, "width", id="width-above-int32"),
        pytest.param(
            {
                "champion": {
                    "prediction": samples.detection((0.9,)).model_dump(mode="json")
                    | {"boxes": [[math.nan, 5, 8, 30]]},
                    "latency_ms": 1,
                }
            },
            422,
            "champion.prediction.boxes[0][0]",
            id="nan-box",
        ),
        pytest.param(
            {
                "champion": {
                    "prediction": samples.detection((0.9,)).model_dump(mode="json"),
                    "latency_ms": math.inf,
                }
            },
            422,
            "champion.latency_ms",
            id="infinite-latency",
        ),
        pytest.param(
            {
                "champion": {
                    "prediction": samples.detection((0.9,)).model_dump(mode="json") | {"classes": ["cat"]},
                    "latency_ms": 1,
                }
            },
            422,
            "champion.prediction.classes[0]",
            id="label-outside-the-labelmap",
        ),
    ],
)
async def test_bad_input_names_the_field(
    client: httpx.AsyncClient, world: World, change: dict[str, Any], status: int, field: str
) -> None:
    answer = await client.post(
        f"/v1/deployments/{world.detection}/predictions",
        content=json.dumps(body() | change),  # NaN and Infinity too, as a careless producer writes them
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == status, answer.text
    assert ErrorBody.model_validate(answer.json()).errors[0].field == field, answer.text  # as documented


async def test_too_large_image_answers_413(client: httpx.AsyncClient, world: World) -> None:
    huge = base64.b64encode(bytes(11 * 1024 * 1024)).decode()
    answer = await client.post(f"/v1/deployments/{world.detection}/predictions", json=body(image_base64=huge))
    assert answer.status_code == 413, answer.text


async def test_a_chunked_body_over_the_limit_answers_413(client: httpx.AsyncClient, world: World) -> None:
    """A chunked body declares no length: its bytes are counted as they come."""

    async def twenty_megabytes() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * (1024 * 1024)

    answer = await client.post(
        f"/v1/deployments/{world.detection}/predictions",
        content=twenty_megabytes(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text  # the limit is about 14.3 MB (10 MB of image as base64)
    assert answer.request.headers["transfer-encoding"] == "chunked"


async def test_a_pixel_bomb_answers_413_without_being_decoded(
    client: httpx.AsyncClient, world: World
) -> None:
    """A PNG of a few bytes declaring 8000x8000 pixels: refused from its header (decoding its truncated
    data would answer 415, and allocate 192 MB first)."""
    bomb = samples.pixel_bomb(8000, 8000)
    fields = body(width=8000, height=8000)
    answer = await client.post(
        f"/v1/deployments/{world.detection}/predictions",
        json=fields | {"image_base64": base64.b64encode(bomb).decode()},
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["errors"][0]["field"] == "image_base64"
    assert "8000x8000" in answer.text
    del fields["image_base64"]
    multipart = await client.post(
        f"/v1/deployments/{world.detection}/predictions",
        files={"image": ("bomb.png", bomb, "image/png")},
        data={"data": json.dumps(fields)},
    )
    assert multipart.status_code == 413, multipart.text
    assert multipart.json()["errors"][0]["field"] == "image"


async def test_model_versions_outside_the_project_answer_404(
    client: httpx.AsyncClient, pool: asyncpg.Pool, world: World
) -> None:
    """A foreign or unknown model version would fail the INSERT's foreign key: refused before, naming it."""
    for version in (world.other_project_version, uuid4()):
        for role in ("champion", "shadow"):
            fields = body()
            fields[role] = fields[role] | {"model_version_id": str(version)}
            answer = await client.post(f"/v1/deployments/{world.detection}/predictions", json=fields)
            assert answer.status_code == 404, answer.text
            assert answer.json()["errors"][0]["field"] == f"{role}.model_version_id"
    named = body()
    named["champion"] = named["champion"] | {"model_version_id": str(world.champion_id)}
    accepted = await client.post(f"/v1/deployments/{world.detection}/predictions", json=named)
    assert accepted.status_code == 201, accepted.text
    batch = await client.post(
        f"/v1/deployments/{world.detection}/predictions:batch",
        json={
            "items": [body(), body() | {"champion": named["champion"] | {"model_version_id": str(uuid4())}}]
        },
    )
    assert [r["status"] for r in batch.json()["results"]] == [201, 404], batch.text


async def test_served_deployment_refuses_monitored_predictions(
    client: httpx.AsyncClient, world: World
) -> None:
    answer = await client.post(f"/v1/deployments/{world.served}/predictions", json=body())
    assert answer.status_code == 409
    assert answer.json()["errors"][0]["field"] == "deployment_id"
    assert "monitoring-only" in answer.json()["detail"]


async def test_keys_and_projects(client: httpx.AsyncClient, world: World) -> None:
    url = f"/v1/deployments/{world.detection}/predictions"
    assert (await client.post(url, json=body(), headers={"Authorization": ""})).status_code == 401
    assert (
        await client.post(url, json=body(), headers={"Authorization": "Bearer cvl_nope"})
    ).status_code == 401
    read_only = await client.post(url, json=body(), headers={"Authorization": f"Bearer {world.read_key}"})
    assert read_only.status_code == 403
    assert read_only.json()["errors"][0]["field"] == "authorization"
    other = await client.post(f"/v1/deployments/{world.other_project_deployment}/predictions", json=body())
    missing = await client.post(f"/v1/deployments/{uuid4()}/predictions", json=body())
    assert other.status_code == missing.status_code == 404
    assert other.json()["errors"][0]["field"] == "deployment_id"


async def test_batch_answers_each_item(client: httpx.AsyncClient, pool: asyncpg.Pool, world: World) -> None:
    image = png()
    items = [
        body(image),
        body(),
        body(image),  # the same image as item 0
        body(width=0),
        body(
            champion={
                "prediction": {"type": "classification", "classes": ["a"], "scores": [1]},
                "latency_ms": 1,
            }
        ),
    ]
    answer = await client.post(f"/v1/deployments/{world.detection}/predictions:batch", json={"items": items})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == [201, 201, 409, 422, 422]
    assert results[2]["prediction_id"] == results[0]["prediction_id"]
    assert results[3]["detail"].startswith("width")
    assert results[4]["detail"].startswith("champion.prediction.type")
    for result in results[:2]:
        assert await _eventually_stored(pool, world.project_id, UUID(result["prediction_id"]))

    too_many = await client.post(
        f"/v1/deployments/{world.detection}/predictions:batch", json={"items": [body()] * 501}
    )
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "items"


# --- predictions.raw -------------------------------------------------------------------------------


def raw(world: World, image: bytes | None = None, **overrides: Any) -> RawPrediction:
    fields = {
        "deployment_id": world.detection,
        "image_base64": base64.b64encode(image or png()).decode(),
        "width": 64,
        "height": 48,
        "champion": RoleResult(prediction=samples.detection((0.9, 0.3)), latency_ms=8.0),
        "source": "line-4",
    }
    return RawPrediction(**(fields | overrides))


async def test_valid_raw_message_reaches_predictions_and_postgres_once(
    ingest_settings: Settings, producer: EventProducer, pool: asyncpg.Pool, world: World
) -> None:
    message = raw(world)
    await producer.publish(Topic.PREDICTIONS_RAW, message)
    await producer.publish(Topic.PREDICTIONS_RAW, message)  # a producer's retry: the same event id

    prediction_id, event_id = raw_ids(message.event_id)
    event = await _logged(ingest_settings, prediction_id)
    assert (event.event_id, event.source) == (event_id, PredictionSource.KAFKA)
    assert event.champion.prediction.scores == [0.9]
    assert "brightness" in event.features
    stored = await _eventually_stored(pool, world.project_id, prediction_id)
    assert stored.metadata["source"] == "line-4"

    marker = raw(world)  # published after both copies: once it is in, both copies were handled
    await producer.publish(Topic.PREDICTIONS_RAW, marker)
    await _eventually_stored(pool, world.project_id, raw_ids(marker.event_id)[0])
    copies = await pool.fetchval(
        "SELECT count(*) FROM predicted_assets WHERE image_sha256 = $1", event.image.sha256
    )
    assert copies == 1


@pytest.mark.parametrize(
    ("value", "field"),
    [
        pytest.param(b"{not json", "", id="not-json"),
        pytest.param("missing-champion", "champion", id="missing-field"),
        pytest.param("type-mismatch", "champion.prediction.type", id="type-mismatch"),
        pytest.param("shadow-without-latency", "shadow.latency_ms", id="shadow-without-latency"),
        pytest.param("unknown-deployment", "deployment_id", id="unknown-deployment"),
        pytest.param("served", "deployment_id", id="served-deployment"),
        pytest.param("same-image", "image", id="image-already-logged"),
        pytest.param("nul-tag", "tags[0]", id="nul-in-a-tag"),
        pytest.param("huge-int", "metadata", id="int-above-int64-in-metadata"),
        pytest.param("nan-box", "champion.prediction.boxes[0][0]", id="nan-box"),
        pytest.param("foreign-version", "champion.model_version_id", id="foreign-model-version"),
        pytest.param("unknown-version", "champion.model_version_id", id="unknown-model-version"),
        pytest.param("unknown-label", "champion.prediction.classes[0]", id="label-outside-the-labelmap"),
    ],
)
async def test_bad_raw_messages_are_dead_lettered_with_the_field(
    ingest_settings: Settings,
    producer: EventProducer,
    client: httpx.AsyncClient,
    world: World,
    value: bytes | str,
    field: str,
) -> None:
    marker = uuid4().hex  # in the message's bytes, to find its dead letter
    message = raw(world, metadata={"marker": marker})
    payload = message.model_dump(mode="json")
    if value == "missing-champion":
        del payload["champion"]
    elif value == "type-mismatch":
        payload["champion"]["prediction"] = {"type": "classification", "classes": ["a"], "scores": [1.0]}
    elif value == "shadow-without-latency":
        payload["shadow"] = {"prediction": samples.detection((0.7,)).model_dump(mode="json")}
    elif value == "unknown-deployment":
        payload["deployment_id"] = str(uuid4())
    elif value == "served":
        payload["deployment_id"] = str(world.served)
    elif value == "nul-tag":
        payload["tags"] = ["a\x00b"]
    elif value == "huge-int":
        payload["metadata"]["count"] = 2**64
    elif value == "nan-box":
        payload["champion"]["prediction"]["boxes"][0][0] = math.nan
    elif value in ("foreign-version", "unknown-version"):
        foreign = world.other_project_version if value == "foreign-version" else uuid4()
        payload["champion"]["model_version_id"] = str(foreign)
    elif value == "unknown-label":
        payload["champion"]["prediction"]["classes"][0] = "cat"
    elif value == "same-image":
        image = png()
        first = await client.post(f"/v1/deployments/{world.detection}/predictions", json=body(image))
        assert first.status_code == 201
        payload["image_base64"] = base64.b64encode(image).decode()
    data = value + marker.encode() if isinstance(value, bytes) else json.dumps(payload).encode()
    await producer.publish_bytes(Topic.PREDICTIONS_RAW, data, key=str(world.detection).encode())

    letter = await _dead_letter(ingest_settings, marker)
    assert letter.source_topic == Topic.PREDICTIONS_RAW
    assert letter.original_value == data
    if field:
        assert letter.error.startswith(field), letter.error
    else:
        assert letter.error_type == "validation"


# --- persistence and the outbox --------------------------------------------------------------------


async def test_every_predictions_event_is_persisted_once(
    producer: EventProducer, pool: asyncpg.Pool, world: World
) -> None:
    event = samples.prediction_logged(deployment_id=world.detection).model_copy(
        update={
            "image": samples.image().model_copy(
                update={"sha256": "ab" * 32, "object_key": f"images/ab/{'ab' * 32}.png"}
            ),
            "champion": RoleResult(
                model_version_id=world.champion_id, prediction=samples.detection(), latency_ms=5
            ),
            "shadow": None,
            "source": PredictionSource.SERVING,
        }
    )
    await producer.publish(Topic.PREDICTIONS, event)
    await producer.publish(Topic.PREDICTIONS, event)  # replayed
    stored = await _eventually_stored(pool, world.project_id, event.prediction_id)
    assert stored.source == "serving" and stored.status.value == "TO_REVIEW"
    marker = samples.prediction_logged(deployment_id=world.detection).model_copy(
        update={
            "image": samples.image().model_copy(
                update={"sha256": "cd" * 32, "object_key": f"images/cd/{'cd' * 32}.png"}
            ),
            "champion": RoleResult(prediction=samples.detection(), latency_ms=5),
            "shadow": None,
        }
    )
    await producer.publish(Topic.PREDICTIONS, marker)
    await _eventually_stored(pool, world.project_id, marker.prediction_id)
    rows = await pool.fetchval("SELECT count(*) FROM predicted_assets WHERE image_sha256 = $1", "ab" * 32)
    assert rows == 1


async def test_a_recorded_but_unpublished_prediction_is_relayed(
    ingest_settings: Settings, pool: asyncpg.Pool, world: World
) -> None:
    """What a crash between the commit and the publish leaves: the row and its outbox entry."""
    event = samples.prediction_logged(deployment_id=world.detection).model_copy(
        update={
            "image": samples.image().model_copy(
                update={"sha256": "ef" * 32, "object_key": f"images/ef/{'ef' * 32}.png"}
            ),
            "champion": RoleResult(prediction=samples.detection(), latency_ms=5),
            "shadow": None,
            "source": PredictionSource.MONITOR_API,
        }
    )
    async with pool.acquire() as conn, conn.transaction():
        assert await predicted_assets.insert_prediction(conn, world.project_id, event)
        await conn.execute(
            "INSERT INTO outbox (event_id, topic, key, value) VALUES ($1, $2, $3, $4)",
            event.event_id,
            Topic.PREDICTIONS.value,
            event.key,
            event.to_bytes(),
        )
    relayed = await _logged(ingest_settings, event.prediction_id)
    assert relayed == event
    await _outbox_drained(pool, event.event_id)


async def test_the_relay_sends_due_events_in_order_and_leaves_those_in_flight(
    ingest_settings: Settings, pool: asyncpg.Pool, producer: EventProducer
) -> None:
    """Every process's relay serves the one outbox: a change's events go out in the order written, and a
    row its publisher may still have in flight (ingest's delay) is left to it."""
    template = next(e for e in samples.all_events() if isinstance(e, DeploymentUpdated))
    due = [
        template.model_copy(update={"event_id": uuid4(), "confidence_threshold": t}) for t in (0.1, 0.2, 0.3)
    ]
    in_flight = template.model_copy(update={"event_id": uuid4()})
    async with pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, [(Topic.DEPLOYMENTS, event) for event in due])
        await conn.execute(
            """INSERT INTO outbox (event_id, topic, key, value, relay_after)
               VALUES ($1, $2, $3, $4, now() + interval '1 hour')""",
            in_flight.event_id,
            Topic.DEPLOYMENTS.value,
            in_flight.key,
            in_flight.to_bytes(),
        )
    await relay.flush(pool, producer)  # or the ingest service's relay takes them first: all three at once

    ids = [str(event.event_id).encode() for event in [*due, in_flight]]
    records = await _records(ingest_settings, Topic.DEPLOYMENTS, lambda r: any(i in r.value for i in ids), 3)
    assert [decode(Topic.DEPLOYMENTS, r.value).event_id for r in records] == [e.event_id for e in due]
    for event in due:
        await _outbox_drained(pool, event.event_id)
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE event_id = $1", in_flight.event_id) == 1
    await outbox.delete(pool, [in_flight.event_id])


async def test_a_raw_message_recorded_before_a_crash_is_published_when_it_comes_again(
    ingest_settings: Settings, producer: EventProducer, pool: asyncpg.Pool, world: World
) -> None:
    """A crash after the insert and before the publish leaves the row and an uncommitted raw offset:
    the message comes again, finds its prediction under the same derived id, and publishes its event."""
    store = ObjectStore.from_settings(ingest_settings)
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.IMAGES, png(), "image/png")
    await objects.record(pool, world.project_id, [stored.key])
    message = raw(world, image_base64=None, image_object_key=stored.key)
    prediction_id, event_id = raw_ids(message.event_id)
    recorded = PredictionLogged(
        event_id=event_id,
        deployment_id=world.detection,
        prediction_id=prediction_id,
        detection_type=DetectionType.DETECTION,
        image=samples.image().model_copy(update={"sha256": stored.sha256, "object_key": stored.key}),
        champion=RoleResult(prediction=samples.detection((0.9,)), latency_ms=8.0),
        source=PredictionSource.KAFKA,
        predicted_at=message.occurred_at,
    )
    assert await predicted_assets.insert_prediction(pool, world.project_id, recorded)

    await producer.publish(Topic.PREDICTIONS_RAW, message)  # the redelivery
    event = await _logged(ingest_settings, prediction_id)
    assert (event.event_id, event.image.sha256) == (event_id, stored.sha256)
    rows = await pool.fetchval(
        "SELECT count(*) FROM predicted_assets WHERE prediction_id = $1", prediction_id
    )
    assert rows == 1


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert "cvloop_ingest_predictions_total" in metrics
    assert 'cvloop_ingest_consumed_total{consumer="raw",outcome="dead_lettered"}' in metrics


# --- one message, request or row never stops the others -----------------------------------------

NUL_TAG = "camera\x003"


async def _dead_letters(settings: Settings, consumer: str, markers: set[str]) -> dict[str, DeadLetter]:
    """The dead letters of `consumer` whose original bytes hold one of `markers`, by marker."""

    def marker_of(record: Any) -> str | None:
        letter = DeadLetter.from_bytes(record.value)
        value = (letter.original_value or b"").decode(errors="replace")
        return next((m for m in markers if m in value), None) if letter.consumer == consumer else None

    records = await _records(settings, Topic.DEADLETTER, lambda r: marker_of(r) is not None, len(markers))
    return {marker_of(r) or "": DeadLetter.from_bytes(r.value) for r in records}


def _served(deployment_id: UUID, *, tags: list[str] | None = None) -> PredictionLogged:
    """A served prediction of a new image, as serving publishes it."""
    sha = hashlib.sha256(uuid4().bytes).hexdigest()
    return samples.prediction_logged(deployment_id=deployment_id).model_copy(
        update={
            "image": samples.image().model_copy(
                update={"sha256": sha, "object_key": f"images/{sha[:2]}/{sha}.png"}
            ),
            "champion": RoleResult(prediction=samples.detection(), latency_ms=5),
            "shadow": None,
            "source": PredictionSource.SERVING,
            "tags": tags if tags is not None else ["camera-3"],
        }
    )


@pytest.fixture(scope="module")
async def other_world(pool: asyncpg.Pool, world: World) -> tuple[UUID, UUID]:
    """(project id, deployment id) of the project of world.other_project_deployment."""
    project_id = await pool.fetchval(
        "SELECT project_id FROM deployments WHERE id = $1", world.other_project_deployment
    )
    return project_id, world.other_project_deployment


async def test_a_predictions_event_postgres_refuses_is_dead_lettered_and_the_others_stored(
    ingest_settings: Settings,
    producer: EventProducer,
    pool: asyncpg.Pool,
    world: World,
    other_world: tuple[UUID, UUID],
) -> None:
    other_project, other_deployment = other_world
    bad = _served(world.detection, tags=[NUL_TAG])
    before = [_served(other_deployment) for _ in range(20)]
    after = [_served(other_deployment) for _ in range(20)]
    # One poll, most likely one batch: the bad event among another project's valid ones.
    await producer.publish_many(Topic.PREDICTIONS, [*before, bad, *after])

    for event in [*before, *after]:
        await _eventually_stored(pool, other_project, event.prediction_id)
    letters = await _dead_letters(ingest_settings, "cvloop-ingest-persistence", {str(bad.prediction_id)})
    letter = letters[str(bad.prediction_id)]
    assert letter.source_topic == Topic.PREDICTIONS
    assert letter.error  # the reason: Postgres refuses NUL in text (or the schema does, at decoding)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM predicted_assets WHERE prediction_id = $1", bad.prediction_id
        )
        == 0
    )


async def test_raw_messages_naming_a_foreign_or_unknown_model_version_are_dead_lettered_alone(
    ingest_settings: Settings, producer: EventProducer, pool: asyncpg.Pool, world: World
) -> None:
    other = await projects.create_project(pool, f"foreign-{uuid4().hex[:8]}")
    model = await registry.create_model(pool, other.id, "theirs")
    theirs = await registry.create_model_version(
        pool, other.id, model.id, NewModelVersion(version="1", detection_type=DetectionType.DETECTION)
    )
    foreign = raw(
        world, champion=RoleResult(model_version_id=theirs.id, prediction=samples.detection(), latency_ms=3)
    )
    unknown = raw(
        world, champion=RoleResult(model_version_id=uuid4(), prediction=samples.detection(), latency_ms=3)
    )
    valid = [raw(world) for _ in range(6)]
    await producer.publish_many(Topic.PREDICTIONS_RAW, [valid[0], foreign, *valid[1:4], unknown, *valid[4:]])

    for message in valid:
        await _eventually_stored(pool, world.project_id, raw_ids(message.event_id)[0])
    markers = {str(foreign.event_id), str(unknown.event_id)}
    letters = await _dead_letters(ingest_settings, "cvloop-ingest-raw", markers)
    assert set(letters) == markers
    for letter in letters.values():
        assert letter.source_topic == Topic.PREDICTIONS_RAW
        assert "model version" in letter.error, letter.error
    for message in (foreign, unknown):
        prediction_id = raw_ids(message.event_id)[0]
        assert not await pool.fetchval(
            "SELECT count(*) FROM predicted_assets WHERE prediction_id = $1", prediction_id
        )


async def _tenant(pool: asyncpg.Pool) -> tuple[UUID, str, UUID]:
    """A project of its own: (project id, write key, monitoring-only detection deployment)."""
    project = await projects.create_project(pool, f"tenant-{uuid4().hex[:8]}")
    _, key = await projects.create_api_key(pool, project.id, "writer", [Scope.WRITE])
    model = await registry.create_model(pool, project.id, "detector")
    version = await registry.create_model_version(
        pool, project.id, model.id, NewModelVersion(version="1", detection_type=DetectionType.DETECTION)
    )
    created = await deployments.create_deployment(
        pool,
        project.id,
        f"d-{uuid4().hex[:8]}",
        kind=DeploymentKind.MONITORING_ONLY,
        detection_type=DetectionType.DETECTION,
        champion_model_version_id=version.id,
        confidence_threshold=0.5,
    )
    return project.id, key, created.id


async def test_one_tenant_s_bad_requests_fail_only_that_tenant_s_requests(
    pool: asyncpg.Pool, world: World, client: httpx.AsyncClient
) -> None:
    """Concurrent monitor requests are recorded together: project A's requests holding NUL or a metadata
    larger than a topic takes answer 4xx, every one of project B's answers 201."""
    project_b, key_b, deployment_b = await _tenant(pool)
    huge = {"blob": "x" * (MAX_MESSAGE_BYTES + 1000)}
    bad = [body(tags=[NUL_TAG]) if i % 2 else body(metadata=huge) for i in range(20)]
    good = [body() for _ in range(200)]
    url_a = f"/v1/deployments/{world.detection}/predictions"
    url_b = f"/v1/deployments/{deployment_b}/predictions"
    as_b = {"Authorization": f"Bearer {key_b}"}

    answers_a, answers_b = await asyncio.gather(
        asyncio.gather(*(client.post(url_a, json=item) for item in bad)),
        asyncio.gather(*(client.post(url_b, json=item, headers=as_b) for item in good)),
    )

    refused_b = [(a.status_code, a.text) for a in answers_b if a.status_code != 201]
    assert not refused_b, refused_b
    assert all(400 <= a.status_code < 500 for a in answers_a), [(a.status_code, a.text) for a in answers_a]
    too_large = [a for a, item in zip(answers_a, bad, strict=True) if "blob" in item["metadata"]]
    assert {e["field"] for a in too_large for e in a.json()["errors"]} == {"metadata"}
    for answer in answers_b:
        await _eventually_stored(pool, project_b, UUID(answer.json()["prediction_id"]))


# --- the outbox ------------------------------------------------------------------------------------


def _with_metadata(size: int) -> PredictionLogged:
    return _served(uuid4()).model_copy(update={"metadata": {"blob": "x" * size}})


async def test_an_event_larger_than_a_topic_takes_cannot_be_written_to_the_outbox(pool: asyncpg.Pool) -> None:
    event = _with_metadata(5 * 1024 * 1024)
    with pytest.raises(EventTooLarge) as refused:
        await outbox.enqueue(pool, [(Topic.PREDICTIONS, event)])
    assert refused.value.field == "metadata"
    assert str(MAX_MESSAGE_BYTES) in str(refused.value)
    assert not await pool.fetchval("SELECT count(*) FROM outbox WHERE event_id = $1", event.event_id)


async def test_an_outbox_row_the_broker_refuses_is_parked_and_the_rows_after_it_published(
    ingest_settings: Settings, pool: asyncpg.Pool, producer: EventProducer
) -> None:
    """A 5 MB event left in the outbox (written before events were checked at write) is the oldest row:
    the relay parks it with the reason and publishes the others."""
    huge = _with_metadata(5 * 1024 * 1024)
    template = next(e for e in samples.all_events() if isinstance(e, DeploymentUpdated))
    due = [template.model_copy(update={"event_id": uuid4(), "confidence_threshold": t}) for t in (0.1, 0.2)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO outbox (event_id, topic, key, value) VALUES ($1, $2, $3, $4)",
            huge.event_id,
            Topic.PREDICTIONS.value,
            huge.key,
            huge.to_bytes(),
        )
        await outbox.enqueue(conn, [(Topic.DEPLOYMENTS, event) for event in due])
    await relay.flush(pool, producer)  # or the ingest service's relay takes them first

    ids = [str(event.event_id).encode() for event in due]
    records = await _records(ingest_settings, Topic.DEPLOYMENTS, lambda r: any(i in r.value for i in ids), 2)
    assert [decode(Topic.DEPLOYMENTS, r.value).event_id for r in records] == [e.event_id for e in due]
    parked = {record.event_id: reason for record, reason in await outbox.parked(pool)}
    assert parked[huge.event_id].startswith(MessageSizeTooLargeError.__name__), parked[huge.event_id]
    assert await relay.flush(pool, producer) >= 0  # a later round leaves the parked row alone
    assert huge.event_id in {record.event_id for record, _ in await outbox.parked(pool)}
    await outbox.delete(pool, [huge.event_id])
