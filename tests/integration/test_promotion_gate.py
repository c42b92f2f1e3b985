"""The promotion gate end to end through the real Postgres, broker and S3: the api records reviews and
publishes them on `reviews`, the pipeline service's gate compares champion and shadow on the paired
reviews and promotes, holds or rolls back, publishing each decision on `deployments` and answering it in
the api (classification by McNemar's test, detection by the paired bootstrap). Replaying every review
changes nothing: each promotion and rollback happens exactly once."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from prometheus_client import REGISTRY

from cvloop.demo.polling import until
from schemas.events import (
    DeploymentChange,
    DeploymentUpdated,
    PredictionReviewed,
)
from schemas.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    DetectionType,
    Prediction,
    SegmentationPrediction,
)
from schemas.topics import Topic
from schemas.vocabulary import DeploymentPolicy, GateOutcome
from services.common.db.repositories import predicted_assets
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.pipeline.service import PipelineService
from tests.api_support import Api, Project, Running, new_project, recorded_prediction
from tests.integration.pipeline_fixtures import events_of
from tests.integration.test_api import model_version, upload_image

MIN_PAIRS = 12
LABELS = ["a", "b"]
IMAGE_SEEDS = itertools.count(90_000)  # a new image per prediction: one prediction per image and deployment


@pytest.fixture(scope="module")
def module_settings(postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings) -> Settings:
    return postgres_settings


@pytest.fixture(scope="module")
async def service(running: Running) -> AsyncIterator[PipelineService]:
    settings = running.settings.model_copy(
        update={
            "pipeline_outbox_retry_s": 0.5,
            "pipeline_gate_min_pairs": MIN_PAIRS,
            "pipeline_gate_watch_reviews": 3 * MIN_PAIRS,
        }
    )
    service = PipelineService(settings)  # type: ignore[arg-type]
    await service.start()
    yield service
    await service.stop()


def answer(label: str) -> ClassificationPrediction:
    other = LABELS[1 - LABELS.index(label)]
    return ClassificationPrediction(classes=[label, other], scores=[0.8, 0.2])


RIGHT, WRONG = answer("a"), answer("b")  # the truth is "a"
BOX_RIGHT = DetectionPrediction(classes=["a"], scores=[0.9], boxes=[[4.0, 4.0, 30.0, 30.0]])
BOX_WRONG = DetectionPrediction(classes=["a"], scores=[0.9], boxes=[[34.0, 10.0, 60.0, 40.0]])
OUTLINE_RIGHT = SegmentationPrediction(
    classes=["a"], scores=[0.9], polygons=[[(4, 4), (30, 4), (30, 30), (4, 30)]]
)
OUTLINE_WRONG = SegmentationPrediction(
    classes=["a"], scores=[0.9], polygons=[[(34, 10), (60, 10), (60, 40), (34, 40)]]
)


async def gated_deployment(
    api: Api, detection_type: DetectionType = DetectionType.CLASSIFICATION
) -> tuple[dict[str, Any], str, str]:
    """A deployment of version 1 with version 2 as shadow, under shadow_then_promote."""
    first = await model_version(api, LABELS, detection_type=detection_type.value)
    second = await api(
        "POST",
        f"/v1/models/{first['model_id']}/versions",
        201,
        json={"version": "2", "detection_type": detection_type.value, "labelmap_id": first["labelmap_id"]},
    )
    body = {"name": f"dep-{uuid4().hex[:6]}", "kind": "monitoring_only", "model_version_id": first["id"]}
    dep = await api("POST", "/v1/deployments", 201, json=body)
    await api("PUT", f"/v1/deployments/{dep['id']}/shadow", 200, json={"model_version_id": second["id"]})
    await api(
        "PUT",
        f"/v1/deployments/{dep['id']}/continuous-deployment",
        200,
        json={"policy": DeploymentPolicy.SHADOW_THEN_PROMOTE.value, "active": True},
    )
    return dep, first["id"], second["id"]


async def reviewed(
    running: Running,
    project: Project,
    api: Api,
    deployment_id: str,
    champion_right: bool,
    count: int,
    answers: tuple[Prediction, Prediction] = (RIGHT, WRONG),
) -> None:
    """`count` predictions of the deployment's current roles, one right and the other wrong (`answers`),
    reviewed through the api with the right one."""
    right, wrong = answers
    dep = await api("GET", f"/v1/deployments/{deployment_id}", 200)
    for _ in range(count):
        upload = await upload_image(api, next(IMAGE_SEEDS))
        event = recorded_prediction(
            dep,
            upload,
            right if champion_right else wrong,
            shadow=wrong if champion_right else right,
            shadow_latency_ms=4.0,
        )
        assert await predicted_assets.insert_prediction(running.pool, project.id, event)
        review = {"review": right.model_dump(mode="json")}
        await api("PUT", f"/v1/predictions/{event.prediction_id}/review", 200, json=review)


async def roles(api: Api, deployment_id: str, champion: str, shadow: str | None) -> bool | None:
    dep = await api("GET", f"/v1/deployments/{deployment_id}", 200)
    return (
        True
        if (dep["champion_model_version_id"], dep["shadow_model_version_id"]) == (champion, shadow)
        else None
    )


async def replay_reviews(settings: Settings, producer: EventProducer, deployment_id: str) -> int:
    """Publish every review of the deployment again, as a replayed partition would deliver them."""
    found = await events_of(settings, Topic.REVIEWS, UUID(deployment_id), settle_s=0.3)
    for event in found:
        assert isinstance(event, PredictionReviewed)
        await producer.publish(Topic.REVIEWS, event)
    return len(found)


async def changes(settings: Settings, deployment_id: str) -> list[DeploymentUpdated]:
    found = await events_of(settings, Topic.DEPLOYMENTS, UUID(deployment_id), settle_s=0.5)
    return [e for e in found if e.gate is not None]


async def _last_decision(api: Api, deployment_id: str, outcome: str) -> dict[str, Any] | None:
    decisions = await api("GET", f"/v1/deployments/{deployment_id}/gate-decisions", 200)
    return decisions[0] if decisions and decisions[0]["decision"]["outcome"] == outcome else None


def decisions_counted(deployment_id: str, outcome: GateOutcome) -> float:
    labels = {"deployment": deployment_id, "outcome": outcome.value}
    return REGISTRY.get_sample_value("cvloop_pipeline_gate_decisions_total", labels) or 0.0


async def test_a_better_shadow_is_promoted_once_and_a_worse_promotion_rolled_back_once(
    service: PipelineService,
    running: Running,
    project: Project,
    api: Api,
    producer: EventProducer,
    module_settings: Settings,
) -> None:
    dep, first, second = await gated_deployment(api)
    await reviewed(running, project, api, dep["id"], champion_right=False, count=MIN_PAIRS)
    await until(lambda: roles(api, dep["id"], second, first), "the shadow promoted, the champion watched")
    decisions = await api("GET", f"/v1/deployments/{dep['id']}/gate-decisions", 200)
    promoted = next(d for d in decisions if d["decision"]["outcome"] == "promoted")
    assert (promoted["champion_model_version_id"], promoted["shadow_model_version_id"]) == (first, second)
    figures = promoted["decision"]
    assert (figures["metric"], figures["pairs"], figures["reason"]) == ("accuracy", MIN_PAIRS, "better")
    assert (figures["champion_value"], figures["shadow_value"]) == (0.0, 1.0)
    assert figures["p_value"] == pytest.approx(0.5**MIN_PAIRS)
    assert figures["shadow_latency_p95_ms"] == pytest.approx(4.0)
    # The reviews delivered again while the previous champion is watched: no second promotion.
    await replay_reviews(module_settings, producer, dep["id"])
    watching = await until(
        lambda: _last_decision(api, dep["id"], "watching"), "the watch decided on the replayed reviews"
    )
    assert watching["decision"]["pairs"] == 0
    assert await roles(api, dep["id"], second, first)

    # The promoted version proves worse than the one it replaced on the reviews since: rolled back.
    await reviewed(running, project, api, dep["id"], champion_right=False, count=MIN_PAIRS)
    await until(lambda: roles(api, dep["id"], first, None), "the promotion rolled back")

    assert await replay_reviews(module_settings, producer, dep["id"]) == 3 * MIN_PAIRS  # a replay before
    await replay_reviews(module_settings, producer, dep["id"])
    published = await changes(module_settings, dep["id"])
    made = [e.change for e in published if e.change is not DeploymentChange.GATE_DECIDED]
    assert made == [DeploymentChange.SHADOW_PROMOTED, DeploymentChange.ROLLED_BACK]
    rollback = published[-1]
    assert rollback.gate is not None and rollback.gate.outcome is GateOutcome.ROLLED_BACK
    assert (rollback.champion_model_version_id, rollback.shadow_model_version_id) == (UUID(first), None)
    assert rollback.gate.pairs == MIN_PAIRS and rollback.gate.shadow_value == 1.0
    decisions = await api("GET", f"/v1/deployments/{dep['id']}/gate-decisions", 200)
    outcomes = [d["decision"]["outcome"] for d in decisions]
    assert outcomes.count("promoted") == outcomes.count("rolled_back") == 1
    assert [d["id"] for d in decisions] == [str(e.event_id) for e in reversed(published)]
    assert decisions_counted(dep["id"], GateOutcome.PROMOTED) == 1
    assert decisions_counted(dep["id"], GateOutcome.ROLLED_BACK) == 1


async def test_a_worse_shadow_stays_shadow_with_the_reason(
    service: PipelineService,
    running: Running,
    project: Project,
    api: Api,
    producer: EventProducer,
    module_settings: Settings,
) -> None:
    dep, first, second = await gated_deployment(api)
    await reviewed(running, project, api, dep["id"], champion_right=True, count=MIN_PAIRS + 2)

    async def held_not_better() -> dict[str, Any] | None:
        latest = await _last_decision(api, dep["id"], "held")
        return latest if latest and latest["decision"]["reason"] == "not_better" else None

    latest = await until(held_not_better, "the gate holding the worse shadow")
    assert "not better with confidence" in latest["decision"]["message"]
    await replay_reviews(module_settings, producer, dep["id"])
    published = await changes(module_settings, dep["id"])
    # Too few pairs (unless the first batch of reviews held them all), then not better: each reason
    # published once, nothing promoted.
    reasons = [e.gate.reason.value for e in published if e.gate]
    assert reasons in (["too_few_pairs", "not_better"], ["not_better"])
    assert {e.change for e in published} == {DeploymentChange.GATE_DECIDED}
    assert await roles(api, dep["id"], first, second)
    # Another project's key sees no decision of this deployment, as if it did not exist.
    other = running.as_key((await new_project(running.pool)).read)
    await other("GET", f"/v1/deployments/{dep['id']}/gate-decisions", 404)


@pytest.mark.parametrize(
    ("detection_type", "answers", "metric"),
    [
        (DetectionType.DETECTION, (BOX_RIGHT, BOX_WRONG), "ap"),
        (DetectionType.SEGMENTATION, (OUTLINE_RIGHT, OUTLINE_WRONG), "mask_ap"),
    ],
)
async def test_a_better_detector_is_promoted_by_the_paired_bootstrap(
    service: PipelineService,
    running: Running,
    project: Project,
    api: Api,
    detection_type: DetectionType,
    answers: tuple[Prediction, Prediction],
    metric: str,
) -> None:
    dep, first, second = await gated_deployment(api, detection_type)
    await reviewed(running, project, api, dep["id"], champion_right=False, count=MIN_PAIRS, answers=answers)
    await until(lambda: roles(api, dep["id"], second, first), "the better detector promoted")
    decisions = await api("GET", f"/v1/deployments/{dep['id']}/gate-decisions", 200)
    promoted = next(d for d in decisions if d["decision"]["outcome"] == "promoted")
    figures = promoted["decision"]
    assert (figures["metric"], figures["pairs"]) == (metric, MIN_PAIRS)
    assert (figures["champion_value"], figures["shadow_value"]) == (0.0, 1.0)
    assert figures["p_value"] == pytest.approx(1 / 501)  # no resample of the images where it was not better
