"""The detection loop end to end, through the real broker, Postgres, S3 and tritonserver, with every service
as `cvloop up` runs it (scoring too): the PyTorch detector (cvloop.demo.detector) served as champion with
its training data (clean camera-a scenes, also its rehearsal set); drifted camera-b scenes predicted
through serving, scored, reviewed with their true boxes and submitted; at the threshold exactly one
experiment, whose training job runs the PyTorch trainer from the champion's own checkpoint; the export
(model.onnx, model.pt) served as shadow under deploy_shadow; on held-out drifted scenes sent through
serving and reviewed, the shadow's AP from the reviews beats the champion's; promoted, it answers. And the
`digits-detection` demo `cvloop up` seeds with the same builder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cvloop.demo.detection_world import DRIFTED
from cvloop.demo.detector import (
    FINE_TUNING,
    detection_champion,
    detection_datasets,
    scene_examples,
)
from cvloop.demo.loop import SERVICES, Loop, served, set_up
from cvloop.demo.polling import until
from cvloop.demo.seed import DETECTION_DEPLOYMENT, DETECTION_THRESHOLD, seed_detection
from cvloop.stack.demo import DetectionDemo
from cvloop.stack.settings import sdk_settings
from cvloop.trainers.detection_data import REHEARSAL_ALIAS
from schemas.model_version import CHECKPOINT_FILE, IO_FILE, LABELS_FILE, MODEL_FILE
from schemas.predictions import DetectionPrediction
from schemas.vocabulary import ReferenceStatus
from services.common.domain.coco import detection_quality
from services.common.settings import Settings
from tests.sdk_support import invoke

LOOP_SERVICES = [*SERVICES, "scoring"]
THRESHOLD = 30  # reviewed drifted scenes that start the training
HELD_OUT = 40  # drifted scenes never trained on, reviewed once the shadow serves
WAIT_S = 600.0


@pytest.fixture(scope="module")
async def loop(running: Settings) -> AsyncIterator[Loop]:
    champion = await asyncio.to_thread(detection_champion)
    datasets = await asyncio.to_thread(detection_datasets, 100, 40)
    async with set_up(
        running,
        champion,
        threshold=THRESHOLD,
        parameters=FINE_TUNING,
        datasets=datasets,
        training_data=REHEARSAL_ALIAS,
    ) as built:
        yield built


async def _reference_ready(loop: Loop) -> None:
    async def ready() -> bool | None:
        found = (await loop.api.get(f"/v1/deployments/{loop.deployment_id}/training-data")).json()
        assert found["status"] != ReferenceStatus.FAILED, found
        return True if found["status"] == ReferenceStatus.READY else None

    await until(ready, "the training data's reference", WAIT_S)


async def _predicted(loop: Loop, prediction_id: str) -> dict[str, Any]:
    answer = await loop.api.get(f"/v1/predictions/{prediction_id}")
    answer.raise_for_status()
    return answer.json()


async def _outlier_scores(loop: Loop, prediction_ids: list[str]) -> list[float]:
    async def scored() -> list[float] | None:
        found = [(await _predicted(loop, p))["outlier_score"] for p in prediction_ids]
        return None if None in found else found

    return await until(scored, "scoring's outlier scores", WAIT_S)


def _ap(pairs: list[tuple[DetectionPrediction, dict[str, Any]]]) -> float:
    return detection_quality([(truth, DetectionPrediction(**answer)) for truth, answer in pairs]).ap


async def test_reviewed_drifted_scenes_retrain_the_detector_once_and_its_shadow_finds_more(
    loop: Loop,
) -> None:
    feedback = scene_examples(DRIFTED, THRESHOLD, seed=11)
    held_out = scene_examples(DRIFTED, HELD_OUT, seed=12, held_out=True)
    await served(loop, feedback[0].image, WAIT_S)
    await _reference_ready(loop)

    # Drifted scenes through serving, scored against the training data, reviewed (boxes), submitted.
    reviewed = await loop.review(feedback[:1], WAIT_S)
    assert all(score >= 0.0 for score in await _outlier_scores(loop, reviewed))
    await loop.review_and_submit(feedback[1:], WAIT_S)
    answer = await loop.api.post(
        f"/v1/deployments/{loop.deployment_id}/predictions/submit",
        json={"dataset_version_id": str(loop.feedback_id), "prediction_ids": reviewed},
    )
    answer.raise_for_status()

    # Exactly one experiment, trained from the champion's checkpoint, exported with it, served as shadow.
    new_id = await loop.shadow_version(WAIT_S)
    experiments = await loop.db.fetch(
        "SELECT * FROM experiments WHERE training_request_id LIKE $1", f"{loop.deployment_id}:%"
    )
    assert [e["training_request_id"] for e in experiments] == [loop.request_id]
    experiment = experiments[0]
    assert experiment["status"] == "succeeded"
    assert experiment["base_model_version_id"] == loop.champion_id
    assert (await loop.training_run())["status"] == "succeeded"
    version = (await loop.api.get(f"/v1/model-versions/{new_id}")).json()
    champion = (await loop.api.get(f"/v1/model-versions/{loop.champion_id}")).json()
    assert {MODEL_FILE, CHECKPOINT_FILE, IO_FILE, LABELS_FILE} <= {f["name"] for f in version["files"]}
    assert version["io"] == champion["io"]
    assert version["detection_type"] == "detection"
    assert version["training_entrypoint"] == champion["training_entrypoint"]
    assert version["source_experiment_id"] == str(experiment["id"])
    assert set(version["dataset_versions"]) == {"feedback", REHEARSAL_ALIAS, "test"}
    metrics = await loop.trainer_metrics(experiment["id"])
    assert metrics["ap_after"] > metrics["ap_before"], metrics  # the trainer's own, on the `test` scenes

    # Held-out drifted scenes through serving, champion and shadow both answering, reviewed.
    await loop.first_shadow_answer(new_id, [e.image for e in feedback[:3]], WAIT_S)
    ids = await loop.review(held_out, WAIT_S)
    predicted = [await _predicted(loop, p) for p in ids]
    assert all(p["shadow_model_version_id"] == str(new_id) for p in predicted)
    truths = [e.truth for e in held_out]
    champion_ap = _ap([(t, p["champion_prediction"]) for t, p in zip(truths, predicted, strict=True)])
    shadow_ap = _ap([(t, p["shadow_prediction"]) for t, p in zip(truths, predicted, strict=True)])
    assert shadow_ap > champion_ap, (shadow_ap, champion_ap)
    comparison = (await loop.api.get(f"/v1/deployments/{loop.deployment_id}/comparison")).json()
    assert comparison["shadow"]["model_version_id"] == str(new_id)
    assert comparison["shadow"]["quality"]["reviewed"] >= HELD_OUT
    assert comparison["champion"]["quality"]["reviewed"] >= HELD_OUT

    promoted = await loop.api.post(f"/v1/deployments/{loop.deployment_id}/shadow/promote")
    assert promoted.status_code == 200, promoted.text

    async def champion_answers() -> bool | None:
        answer = await loop.predict(held_out[0].image)
        return True if answer["model_version_id"] == str(new_id) else None

    await until(champion_answers, "serving to answer with the promoted detector", WAIT_S)


async def test_cvloop_up_seeds_the_detection_demo_once_and_the_cli_sends_it_scenes(running: Settings) -> None:
    """The `detection_demo` component of `cvloop up`: the loop above, built in project `demo` once (a
    second seeding keeps it), taking drifted scenes from `cvloop demo send` at once (the command waits
    while serving has not heard of the deployment yet)."""
    component = DetectionDemo(running)
    await asyncio.to_thread(component.start)
    assert component.health().ok, component.health()
    first = await seed_detection(running)
    again = await seed_detection(running)
    assert again.deployment_id == first.deployment_id and again.model_version_id == first.model_version_id
    assert str(first.deployment_id) in component.address

    headers = {"Authorization": f"Bearer {first.api_key}"}
    async with httpx.AsyncClient(base_url=sdk_settings(running).api_url, headers=headers) as api:
        deployment = (await api.get(f"/v1/deployments/{first.deployment_id}")).json()
        assert deployment["name"] == DETECTION_DEPLOYMENT and deployment["detection_type"] == "detection"
        training = deployment["continuous_training"]
        assert training["active"] and training["threshold"] == DETECTION_THRESHOLD
        assert set(training["dataset_versions"]) == {"feedback", REHEARSAL_ALIAS, "test"}
        assert deployment["continuous_deployment"]["policy"] == "deploy_shadow"
        champion = (await api.get(f"/v1/model-versions/{first.model_version_id}")).json()
        assert {MODEL_FILE, CHECKPOINT_FILE} <= {f["name"] for f in champion["files"]}

        code, out, err = await asyncio.to_thread(
            invoke, running, "demo", "send", "--count", "3", api_key=first.api_key
        )
        assert code == 0, out + err
        assert out.startswith("sent 3 camera-b scenes"), out

        async def recorded() -> bool | None:
            path = f"/v1/deployments/{first.deployment_id}/predictions/count"
            return True if (await api.get(path)).json()["count"] == 3 else None

        await until(recorded, "the three scenes' predictions recorded", WAIT_S)
