"""The ingest service as it runs (`python -m services.ingest` through the local stack) against the real
Postgres, Kafka-protocol broker and S3 server: the monitor endpoint, `predictions.raw`, persistence."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import numpy as np
import pytest
from PIL import Image

from cvloop.stack import stack
from schemas import DeadLetter, PredictionLogged, RawPrediction, RoleResult, decode
from schemas.events import DeploymentKind, DeploymentUpdated, PredictionSource
from schemas.object_keys import ObjectKind
from schemas.predictions import DetectionType
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common import outbox as relay
from services.common.db.repositories import deployments, objects, outbox, predicted_assets, projects, registry
from services.common.domain.registry import NewModelVersion
from services.common.kafka.consumer import create_consumer
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage.object_store import ObjectStore
from services.ingest.intake import raw_ids
from tests import samples

WAIT_S = 60.0


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


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool) -> World:
    project = await projects.create_project(pool, f"ingest-{uuid4().hex[:8]}")
    _, key = await projects.create_api_key(pool, project.id, "writer", [Scope.WRITE])
    _, read_key = await projects.create_api_key(pool, project.id, "reader", [Scope.READ])
    model = await registry.create_model(pool, project.id, "detector")
    version = await registry.create_model_version(
        pool,
        project.id,
        model.id,
        NewModelVersion(version="1", detection_type=DetectionType.DETECTION),
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
    conflict = next(a for a in answers if a.status_code == 409).json()
    assert conflict["errors"][0]["field"] == "image"
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
    ],
)
async def test_bad_input_names_the_field(
    client: httpx.AsyncClient, world: World, change: dict[str, Any], status: int, field: str
) -> None:
    answer = await client.post(f"/v1/deployments/{world.detection}/predictions", json=body() | change)
    assert answer.status_code == status, answer.text
    assert answer.json()["errors"][0]["field"] == field, answer.text


async def test_too_large_image_answers_413(client: httpx.AsyncClient, world: World) -> None:
    huge = base64.b64encode(bytes(11 * 1024 * 1024)).decode()
    answer = await client.post(f"/v1/deployments/{world.detection}/predictions", json=body(image_base64=huge))
    assert answer.status_code == 413, answer.text


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
