"""Replay before going live, through the real servers: serving (`python -m services.serving`) on
Postgres, the broker, S3 and tritonserver, the api and the pipeline on the same database. A deployment
with reviewed predictions gets a shadow; serving runs the shadow over the reviewed images, so the
comparison has paired figures and the pipeline's promotion gate decides without a new request or review;
a replay run again records nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import numpy as np
import pytest

from cvloop.demo import registration
from cvloop.demo.digits import LABELS, digit_label, digit_png, train_mlp_classifier
from cvloop.demo.polling import until
from schemas.events import DeploymentChange, PredictionLogged, PredictionSource, RoleResult
from schemas.object_keys import ObjectKind
from schemas.predictions import ClassificationPrediction, DetectionType
from schemas.vocabulary import DeploymentPolicy, GateOutcome
from services.common.db.repositories import (
    deployment_figures,
    deployments,
    predicted_assets,
    registry,
    shadow_replays,
)
from services.common.domain.images import decode_image
from services.common.storage.images import store_image
from services.pipeline.service import PipelineService
from tests.api_support import Api, Running, running_app
from tests.exposition import metric_value
from tests.integration import test_serving
from tests.integration.test_serving import World, _reference_scores

REVIEWED = 20
world = test_serving.world  # serving and its models on the real servers, as test_serving starts them
MIN_PAIRS = 12


@pytest.fixture(scope="module")
async def api(world: World) -> AsyncIterator[Api]:
    """The api on serving's database, as the world's project."""
    async for running in running_app(world.settings, world.settings.database_url):
        yield Running.as_key(running, world.key)


@pytest.fixture(scope="module")
async def pipeline(world: World) -> AsyncIterator[PipelineService]:
    """The pipeline service (its promotion gate) on serving's database and broker."""
    settings = world.settings.model_copy(
        update={"pipeline_outbox_retry_s": 0.5, "pipeline_gate_min_pairs": MIN_PAIRS}
    )
    service = PipelineService(settings)
    await service.start()
    yield service
    await service.stop()


def _wrong(label: str) -> ClassificationPrediction:
    """A champion answer that misses the digit."""
    other = LABELS[(LABELS.index(label) + 1) % len(LABELS)]
    return ClassificationPrediction(classes=[other, label], scores=[0.7, 0.3])


async def _reviewed_deployment(world: World, name: str, first_image: int) -> tuple[UUID, list[UUID]]:
    """A served deployment of the linear model with `REVIEWED` predictions its champion got wrong, each
    reviewed with the digit's label (the images stored in S3 as serving stores them)."""
    deployment = await world.deploy(name, world.linear)
    ids = []
    for index in range(first_image, first_image + REVIEWED):
        png = digit_png(index)
        image = await store_image(world.store, png, decode_image(png, len(png)))
        label = digit_label(index)
        event = PredictionLogged(
            deployment_id=deployment,
            prediction_id=uuid4(),
            detection_type=DetectionType.CLASSIFICATION,
            image=image,
            champion=RoleResult(model_version_id=world.linear, prediction=_wrong(label), latency_ms=2.0),
            source=PredictionSource.SERVING,
            predicted_at=datetime.now(UTC),
        )
        assert await predicted_assets.insert_prediction(world.db, world.project_id, event)
        truth = ClassificationPrediction(classes=[label], scores=[1.0])
        await predicted_assets.review(world.db, world.project_id, event.prediction_id, truth, reviewed_by="t")
        ids.append(event.prediction_id)
    return deployment, ids


async def _set_shadow(world: World, deployment: UUID, shadow: UUID) -> None:
    """What the api's PUT .../shadow does: the row, then SHADOW_SET on `deployments`."""
    updated = await deployments.set_shadow(world.db, world.project_id, deployment, shadow)
    await world.announce(updated, DeploymentChange.SHADOW_SET)


async def _replay_done(api: Api, deployment: UUID, shadow: UUID) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        replay = await api.client.get(f"/v1/deployments/{deployment}/shadow-replay")
        body = replay.json()
        if replay.status_code != 200 or body["shadow_model_version_id"] != str(shadow):
            return None
        return body if body["status"] == "done" else None

    return await until(done, "the shadow replay")


async def _serving_metrics(world: World) -> str:
    async with httpx.AsyncClient(base_url=world.url) as http:
        return (await http.get("/metrics")).text


async def test_a_new_shadow_is_replayed_and_the_gate_decides_without_new_traffic(
    world: World, api: Api, pipeline: PipelineService
) -> None:
    deployment, ids = await _reviewed_deployment(world, "replayed", 300)
    await deployments.configure_continuous_deployment(
        world.db, world.project_id, deployment, DeploymentPolicy.SHADOW_THEN_PROMOTE, active=True
    )
    await api("GET", f"/v1/deployments/{deployment}/shadow-replay", 404)  # no shadow yet
    await _set_shadow(world, deployment, world.mlp)

    replay = await _replay_done(api, deployment, world.mlp)
    assert (replay["selected"], replay["replayed"], replay["failed"]) == (REVIEWED, REVIEWED, 0)
    exposition = await _serving_metrics(world)
    recorded = metric_value(
        exposition,
        "cvloop_serving_replayed_total",
        deployment=deployment,
        model_version=world.mlp,
        outcome="recorded",
    )
    assert recorded == REVIEWED

    # Each asset holds the shadow's answer, the one its model gives on serving's preprocessing.
    mlp = train_mlp_classifier()
    for index, prediction_id in zip(range(300, 300 + REVIEWED), ids, strict=True):
        asset = await predicted_assets.get_prediction(world.db, world.project_id, prediction_id)
        assert asset is not None and asset.shadow_model_version_id == world.mlp
        assert asset.shadow_latency_ms is not None and asset.shadow_error is None
        assert asset.shadow_prediction is not None
        expected = LABELS[int(np.argmax(_reference_scores(mlp, digit_png(index))))]
        assert asset.shadow_prediction["classes"][0] == expected

    # The pipeline's gate decides on the replayed pairs (serving announced the replay on `reviews`; no
    # review came after it): the shadow is clearly better, so it is promoted.
    async def promoted() -> dict[str, Any] | None:
        decisions = await api("GET", f"/v1/deployments/{deployment}/gate-decisions", 200)
        return decisions[0]["decision"] if decisions else None

    decision = await until(promoted, "the gate's decision")
    assert (decision["outcome"], decision["pairs"]) == (GateOutcome.PROMOTED.value, REVIEWED)
    after = await deployments.get_deployment(world.db, world.project_id, deployment)
    assert after is not None and after.champion_model_version_id == world.mlp


async def test_the_comparison_pairs_at_once_and_a_replay_run_again_records_once(
    world: World, api: Api
) -> None:
    deployment, ids = await _reviewed_deployment(world, "replayed-twice", 400)
    await _set_shadow(world, deployment, world.mlp)
    await _replay_done(api, deployment, world.mlp)
    before = {
        row["prediction_id"]: row["shadow_latency_ms"]
        for row in await world.db.fetch(
            "SELECT prediction_id, shadow_latency_ms FROM predicted_assets WHERE deployment_id = $1",
            deployment,
        )
    }
    assert set(before) == set(ids) and None not in before.values()

    # The comparison has the paired figures at once, with no request served.
    comparison = await api("GET", f"/v1/deployments/{deployment}/comparison", 200)
    assert comparison["shadow"]["model_version_id"] == str(world.mlp)
    assert comparison["shadow"]["predictions"] == REVIEWED
    assert comparison["shadow"]["quality"]["reviewed"] == REVIEWED
    assert comparison["champion"]["quality"]["accuracy"] == 0.0
    assert comparison["shadow"]["quality"]["accuracy"] > 0.9

    # Set again (a replayed SHADOW_SET): a finished replay is not run again.
    await _set_shadow(world, deployment, world.mlp)
    # A process stopped mid-way left its replay running: the next one resumes it and answers nothing twice.
    await world.db.execute(
        "UPDATE shadow_replays SET status = 'running', finished_at = NULL WHERE deployment_id = $1",
        deployment,
    )
    await world.announce(
        await deployments.get_deployment(world.db, world.project_id, deployment),  # type: ignore[arg-type]
        DeploymentChange.SHADOW_SET,
    )
    replay = await _replay_done(api, deployment, world.mlp)
    assert (replay["selected"], replay["replayed"]) == (REVIEWED, REVIEWED)
    exposition = await _serving_metrics(world)
    labels = {"deployment": deployment, "model_version": world.mlp}
    assert metric_value(exposition, "cvloop_serving_replayed_total", **labels, outcome="recorded") == REVIEWED
    assert metric_value(exposition, "cvloop_serving_replayed_total", **labels, outcome="already") == 0
    after = await deployment_figures.latest_answers(
        world.db, world.project_id, deployment, world.linear, world.mlp, 1000, paired_reviews=True
    )
    assert len(after) == REVIEWED
    latencies = await world.db.fetch(
        "SELECT prediction_id, shadow_latency_ms FROM predicted_assets WHERE deployment_id = $1", deployment
    )
    assert {row["prediction_id"]: row["shadow_latency_ms"] for row in latencies} == before

    # Two processes racing on one image: the second answer of the same version is not written.
    racing = ClassificationPrediction(classes=["0"], scores=[1.0])
    assert not await shadow_replays.record_answer(
        world.db, deployment, ids[0], world.mlp, racing.model_dump(mode="json"), 1.0, None
    )
    asset = await predicted_assets.get_prediction(world.db, world.project_id, ids[0])
    assert asset is not None and asset.shadow_latency_ms == before[ids[0]]


async def test_an_image_gone_from_the_store_is_counted_and_the_others_replayed(
    world: World, api: Api
) -> None:
    deployment, ids = await _reviewed_deployment(world, "replayed-missing", 500)
    gone = await predicted_assets.get_prediction(world.db, world.project_id, ids[0])
    assert gone is not None
    world.store.delete(gone.image_object_key)  # this test's own image: nothing else stores it
    await _set_shadow(world, deployment, world.mlp)

    replay = await _replay_done(api, deployment, world.mlp)
    assert (replay["selected"], replay["replayed"], replay["failed"]) == (REVIEWED, REVIEWED - 1, 1)
    labels = {"deployment": deployment, "model_version": world.mlp}
    exposition = await _serving_metrics(world)
    assert metric_value(exposition, "cvloop_serving_replayed_total", **labels, outcome="failed") == 1
    missing = await predicted_assets.get_prediction(world.db, world.project_id, ids[0])
    assert missing is not None and missing.shadow_prediction is None


async def test_a_shadow_that_fails_on_every_image_is_counted_not_recorded(world: World, api: Api) -> None:
    deployment, _ = await _reviewed_deployment(world, "replayed-failing", 600)
    await _set_shadow(world, deployment, world.failing)  # a model that answers every call with an error

    replay = await _replay_done(api, deployment, world.failing)
    assert (replay["selected"], replay["replayed"], replay["failed"]) == (REVIEWED, 0, REVIEWED)
    exposition = await _serving_metrics(world)
    labels = {"deployment": deployment, "model_version": world.failing}
    assert metric_value(exposition, "cvloop_serving_replayed_total", **labels, outcome="failed") == REVIEWED
    paired = await deployment_figures.latest_answers(
        world.db, world.project_id, deployment, world.linear, world.failing, 1000, paired_reviews=True
    )
    assert paired == []


async def test_a_replay_an_outage_stops_is_retried_until_the_shadow_loads(world: World, api: Api) -> None:
    """The shadow's model file is not in the store when it becomes the shadow (serving cannot load it):
    the replay's first try fails on it; once the file is back and serving reloads the shadow, the next
    try, after its pause, replays every image. Nothing is counted as a replay given up."""
    deployment, _ = await _reviewed_deployment(world, "replayed-after-outage", 700)
    late = train_mlp_classifier(seed=7)  # bytes of its own: deleting them touches no other version
    shadow = await registration.register_onnx_model(
        world.db,
        world.store,
        world.project_id,
        "mlp-late",
        "1",
        late,
        DetectionType.CLASSIFICATION,
        world.digits_labelmap,
    )
    version = await registry.get_model_version(world.db, world.project_id, shadow)
    assert version is not None
    [model_file] = version.files
    world.store.delete(model_file.object_key)
    await _set_shadow(world, deployment, shadow)

    async def failed_once() -> dict[str, Any] | None:
        replay = await api.client.get(f"/v1/deployments/{deployment}/shadow-replay")
        return replay.json() if replay.status_code == 200 and replay.json()["status"] == "failed" else None

    first = await until(failed_once, "the replay's first try to fail on the missing model")
    assert "not loaded" in first["error"] or "NoSuchKey" in first["error"], first
    world.store.put_bytes(ObjectKind.MODELS, late.onnx, "application/onnx")  # the same key: its content's

    replay = await _replay_done(api, deployment, shadow)
    assert (replay["selected"], replay["replayed"], replay["failed"]) == (REVIEWED, REVIEWED, 0)
    exposition = await _serving_metrics(world)
    assert (
        metric_value(exposition, "cvloop_serving_replays_total", deployment=deployment, outcome="done") == 1
    )
    assert (
        metric_value(exposition, "cvloop_serving_replays_total", deployment=deployment, outcome="failed") == 0
    )
