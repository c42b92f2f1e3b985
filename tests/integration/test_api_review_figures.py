"""What the review page reads besides the plain resources, against the real Postgres, broker and S3:
the submissions counted since the deployment's latest training, the champion-vs-shadow comparison,
and the image URL of each listed predicted asset."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from services.common.db.repositories import experiments
from tests.api_support import Api, Project, Running
from tests.integration.test_api import (
    BOX,
    dataset_version,
    deployment,
    logged_prediction,
    model_version,
    upload_image,
)

SHIFTED = BOX | {"boxes": [[1, 2, 30, 21]]}  # half of BOX: IoU 0.5


async def logged(
    running: Running,
    project: Project,
    dep: dict[str, Any],
    seed: int,
    *,
    shadow: dict[str, Any] | None = None,
    latency_ms: float = 10.0,
) -> UUID:
    """`logged_prediction` of a new image."""
    upload = await upload_image(running.as_key(project.write), seed)
    return await logged_prediction(running, project, dep, upload, shadow=shadow, latency_ms=latency_ms)


async def submitted_since_training(api: Api, deployment_id: str) -> int:
    answer = await api("GET", f"/v1/deployments/{deployment_id}", 200)
    return answer["continuous_training"]["submitted_since_training"]


async def test_submissions_count_from_the_latest_training(
    running: Running, project: Project, api: Api
) -> None:
    version = await model_version(api)
    dep = await deployment(api, version)
    other = await deployment(api, version)
    dv = await dataset_version(api, version["labelmap_id"])
    await api("PUT", f"/v1/deployments/{dep['id']}/feedback-loop/{dv['id']}", 200)
    predictions = [await logged(running, project, dep, seed) for seed in range(300, 304)]
    for prediction in predictions:
        await api("PUT", f"/v1/predictions/{prediction}/review", 200, json={"review": BOX})
    submit = f"/v1/deployments/{dep['id']}/predictions/submit"
    assert await submitted_since_training(api, dep["id"]) == 0  # reviewed is not submitted

    await api(
        "POST",
        submit,
        200,
        json={"dataset_version_id": dv["id"], "prediction_ids": [str(p) for p in predictions[:2]]},
    )
    assert await submitted_since_training(api, dep["id"]) == 2  # before the first training: all of them
    assert await submitted_since_training(api, other["id"]) == 0

    async def training_requested(deployment_id: str, cycle: int) -> None:
        """What the pipeline writes when it requests a training: the experiment named by the request."""
        experiment = await experiments.create_experiment(running.pool, project.id, f"ct-{uuid4().hex[:8]}")
        await running.pool.execute(
            "UPDATE experiments SET training_request_id = $1 WHERE id = $2",
            f"{deployment_id}:{cycle}",
            experiment.id,
        )

    await training_requested(other["id"], 1)  # another deployment's training moves nothing here
    assert await submitted_since_training(api, dep["id"]) == 2
    await training_requested(dep["id"], 1)
    assert await submitted_since_training(api, dep["id"]) == 0
    await api(
        "POST", submit, 200, json={"dataset_version_id": dv["id"], "prediction_ids": [str(predictions[2])]}
    )
    assert await submitted_since_training(api, dep["id"]) == 1
    assert (await api("GET", "/v1/deployments", 200, params={"name": dep["name"]}))["items"][0][
        "continuous_training"
    ]["submitted_since_training"] == 1


async def test_comparison_of_champion_and_shadow(running: Running, project: Project, api: Api) -> None:
    champion = await model_version(api)
    dep = await deployment(api, champion)
    body = {"version": "2", "detection_type": "detection", "labelmap_id": champion["labelmap_id"]}
    shadow = await api("POST", f"/v1/models/{champion['model_id']}/versions", 201, json=body)
    before_shadow = await logged(running, project, dep, 400, latency_ms=1.0)
    dep = await api(
        "PUT", f"/v1/deployments/{dep['id']}/shadow", 200, json={"model_version_id": shadow["id"]}
    )
    agreeing = await logged(running, project, dep, 401, shadow=BOX, latency_ms=10.0)
    await logged(running, project, dep, 402, shadow=SHIFTED, latency_ms=30.0)
    for prediction in (before_shadow, agreeing):
        await api("PUT", f"/v1/predictions/{prediction}/review", 200, json={"review": BOX})

    compared = await api("GET", f"/v1/deployments/{dep['id']}/comparison", 200)
    assert compared["window"] == 500
    assert compared["champion"]["model_version_id"] == champion["id"]
    assert compared["champion"]["predictions"] == 3 and compared["champion"]["latency_p50_ms"] == 10.0
    assert compared["champion"]["quality"] == {"ap": 1.0, "ap50": 1.0, "ar": 1.0, "reviewed": 2.0}
    assert compared["shadow"]["model_version_id"] == shadow["id"]
    assert compared["shadow"]["predictions"] == 2 and compared["shadow"]["latency_p50_ms"] == 40.0
    assert compared["shadow"]["quality"]["reviewed"] == 1.0  # the review before the shadow is not its
    assert compared["agreement"] == pytest.approx(0.75)  # mean of IoU 1 and 0.5

    latest = await api("GET", f"/v1/deployments/{dep['id']}/comparison", 200, params={"window": 1})
    assert latest["champion"]["predictions"] == 1 and latest["champion"]["latency_p50_ms"] == 30.0
    answer = await api.raw("GET", f"/v1/deployments/{dep['id']}/comparison", params={"window": 0})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "query.window"

    promoted = await api("POST", f"/v1/deployments/{dep['id']}/shadow/promote", 200)
    after = await api("GET", f"/v1/deployments/{promoted['id']}/comparison", 200)
    assert after["champion"]["model_version_id"] == shadow["id"] and after["champion"]["predictions"] == 0
    assert after["shadow"] is None and after["agreement"] is None
    missing = await api.raw("GET", f"/v1/deployments/{uuid4()}/comparison")
    assert missing.status_code == 404


async def test_listed_assets_carry_an_image_url(running: Running, project: Project, api: Api) -> None:
    version = await model_version(api)
    dep = await deployment(api, version)
    await logged(running, project, dep, 500)
    [item] = (await api("GET", f"/v1/deployments/{dep['id']}/predictions", 200))["items"]
    async with httpx.AsyncClient() as plain:  # no key: the URL itself grants the read
        image = await plain.get(item["image_url"])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
