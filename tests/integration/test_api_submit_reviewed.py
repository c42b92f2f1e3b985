""" "Select all reviewed" across the grid's pages, against the real Postgres, broker and S3: the count of
what a filter matches, and every REVIEWED prediction it matches submitted in one statement, once, with one
`feedback` event each."""

from __future__ import annotations

import asyncio
from uuid import UUID

from schemas.events import AssetSubmitted
from schemas.topics import Topic
from services.common.db.repositories import predicted_assets
from tests.api_support import Api, Project, Running, new_project, published
from tests.integration.test_api import BOX, _review_world, dataset_version, of_deployment

SCORES = (0.1, 0.9, 0.8, 0.2, 0.95)  # the last one stays TO_REVIEW


async def test_submit_every_reviewed_prediction_the_filter_matches(
    running: Running, project: Project, api: Api
) -> None:
    dep, dv, predictions = await _review_world(running, project, api, len(SCORES))
    for score, prediction in zip(SCORES, predictions, strict=True):
        await predicted_assets.set_outlier_score(running.pool, project.id, prediction, score)
    for prediction in predictions[:4]:
        await api("PUT", f"/v1/predictions/{prediction}/review", 200, json={"review": BOX})
    predictions_path = f"/v1/deployments/{dep['id']}/predictions"
    high = {"min_outlier_score": 0.5}

    counted = await api("GET", f"{predictions_path}/count", 200, params=high | {"status": "REVIEWED"})
    assert counted == {"count": 2}
    assert (await api("GET", f"{predictions_path}/count", 200, params=high))["count"] == 3

    body = {"dataset_version_id": dv["id"]}
    done = await api("POST", f"{predictions_path}/submit-reviewed", 200, params=high, json=body)
    assert {s["prediction_id"] for s in done["submitted"]} == {str(predictions[1]), str(predictions[2])}
    statuses = [(await api("GET", f"/v1/predictions/{p}", 200))["status"] for p in predictions]
    assert statuses == ["REVIEWED", "SUBMITTED", "SUBMITTED", "REVIEWED", "TO_REVIEW"]
    assets = await api("GET", f"/v1/dataset-versions/{dv['id']}/assets", 200)
    assert {a["id"] for a in assets["items"]} == {s["asset_id"] for s in done["submitted"]}
    assert {a["annotations"][0]["prediction_id"] for a in assets["items"]} == {
        str(predictions[1]),
        str(predictions[2]),
    }

    # Again: nothing left to submit there, nothing published twice.
    again = await api("POST", f"{predictions_path}/submit-reviewed", 200, params=high, json=body)
    assert again == {"submitted": []}
    assert (await api("GET", f"{predictions_path}/count", 200, params=high | {"status": "REVIEWED"}))[
        "count"
    ] == 0
    feedback = await published(running.settings, [Topic.FEEDBACK], of_deployment(dep["id"]), 2, settle_s=1.5)
    assert all(isinstance(e, AssetSubmitted) and e.dataset_version_id == UUID(dv["id"]) for e in feedback)
    assert sorted(str(e.prediction_id) for e in feedback) == sorted(
        s["prediction_id"] for s in done["submitted"]
    )

    # The rest, unfiltered: the two low ones.
    rest = await api("POST", f"{predictions_path}/submit-reviewed", 200, json=body)
    assert {s["prediction_id"] for s in rest["submitted"]} == {str(predictions[0]), str(predictions[3])}


async def test_submit_reviewed_needs_a_feedback_version_a_write_key_and_its_own_project(
    running: Running, project: Project, api: Api
) -> None:
    dep, dv, [prediction] = await _review_world(running, project, api, 1)
    await api("PUT", f"/v1/predictions/{prediction}/review", 200, json={"review": BOX})
    path = f"/v1/deployments/{dep['id']}/predictions/submit-reviewed"
    detached = await dataset_version(api, None)
    answer = await api.raw("POST", path, json={"dataset_version_id": detached["id"]})
    assert answer.status_code == 409 and answer.json()["errors"][0]["field"] == "body.dataset_version_id"
    answer = await api.raw("POST", path, json={"dataset_version_id": dv["id"], "min_outlier_score": 2})
    assert answer.status_code == 422
    body = {"dataset_version_id": dv["id"]}
    answer = await api.raw("POST", path, params={"min_outlier_score": 2}, json=body)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "query.min_outlier_score"

    read_only = running.as_key(project.read)
    assert (await read_only.raw("POST", path, json={"dataset_version_id": dv["id"]})).status_code == 403
    assert (await read_only("GET", f"/v1/deployments/{dep['id']}/predictions/count", 200))["count"] == 1
    other = running.as_key((await new_project(running.pool)).write)
    assert (await other.raw("POST", path, json={"dataset_version_id": dv["id"]})).status_code == 404
    assert (await other.raw("GET", f"/v1/deployments/{dep['id']}/predictions/count")).status_code == 404
    assert (await api("GET", f"/v1/predictions/{prediction}", 200))["status"] == "REVIEWED"


async def test_concurrent_submissions_of_all_reviewed_submit_each_prediction_once(
    running: Running, project: Project, api: Api
) -> None:
    dep, dv, predictions = await _review_world(running, project, api, 4)
    for prediction in predictions:
        await api("PUT", f"/v1/predictions/{prediction}/review", 200, json={"review": BOX})
    path = f"/v1/deployments/{dep['id']}/predictions/submit-reviewed"
    body = {"dataset_version_id": dv["id"]}
    answers = await asyncio.gather(*(api("POST", path, 200, json=body) for _ in range(3)))
    submitted = [s["prediction_id"] for answer in answers for s in answer["submitted"]]
    assert sorted(submitted) == sorted(str(p) for p in predictions)  # each once, whoever got it
    assert (await api("GET", f"/v1/dataset-versions/{dv['id']}/assets", 200))["total"] == len(predictions)
    feedback = await published(
        running.settings, [Topic.FEEDBACK], of_deployment(dep["id"]), len(predictions), settle_s=1.5
    )
    assert sorted(str(e.prediction_id) for e in feedback) == sorted(submitted)
