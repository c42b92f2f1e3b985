"""The review queue through the api, against the real Postgres, broker and S3: the TO_REVIEW grid's
default order is the queue key, the audit slice is marked, its settings are validated and the project's
own, and the quality figures rest on the audit slice."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from schemas.api.deployments import ReviewQueueSettings
from services.common.db.repositories import predicted_assets
from services.common.domain.acquisition import acquisition_score, in_audit, queue_key
from tests.api_support import Api, Project, Running, new_project, recorded_prediction
from tests.integration.test_api import deployment, model_version, upload_image

SETTINGS = ReviewQueueSettings(
    uncertainty_weight=1.0, outlier_weight=1.0, disagreement_weight=1.0, audit_fraction=0.5
)


def cat(confidence: float) -> dict[str, Any]:
    return {"type": "classification", "classes": ["cat", "dog"], "scores": [confidence, 1 - confidence]}


async def classified(
    running: Running, project: Project, dep: dict[str, Any], seed: int, confidence: float
) -> UUID:
    """A prediction of "cat" with this confidence, as ingest's persistence records it; every other seed's
    id is drawn into the audit slice of `SETTINGS` (so the test does not rest on chance)."""
    upload = await upload_image(running.as_key(project.write), seed)
    audited = seed % 2 == 0
    event = recorded_prediction(
        dep,
        upload,
        cat(confidence),
        prediction_id=next(p for p in iter(uuid4, None) if in_audit(p, SETTINGS.audit_fraction) == audited),
    )
    assert await predicted_assets.insert_prediction(running.pool, project.id, event)
    return event.prediction_id


async def queue_deployment(api: Api) -> dict[str, Any]:
    version = await model_version(api, ["cat", "dog"], detection_type="classification")
    return await deployment(api, version)


async def test_the_grid_orders_to_review_by_the_queue_and_marks_the_audit_slice(
    running: Running, project: Project, api: Api
) -> None:
    dep = await queue_deployment(api)
    path = f"/v1/deployments/{dep['id']}/review-queue"
    assert await api("GET", path, 200) == ReviewQueueSettings().model_dump()
    assert await api("PUT", path, 200, json=SETTINGS.model_dump()) == SETTINGS.model_dump()
    confidences = [0.5 + 0.03 * n for n in range(16)]
    ids = [await classified(running, project, dep, 700 + n, c) for n, c in enumerate(confidences)]

    page = await api("GET", f"/v1/deployments/{dep['id']}/predictions", 200, params={"status": "TO_REVIEW"})
    keys = {
        p: queue_key(p, acquisition_score(1 - (2 * c - 1), None, None, SETTINGS), SETTINGS.audit_fraction)
        for p, c in zip(ids, confidences, strict=True)
    }
    assert [UUID(i["prediction_id"]) for i in page["items"]] == sorted(ids, key=lambda p: (-keys[p], p))
    assert page["total"] == 16
    marks = {UUID(i["prediction_id"]): i["audit"] for i in page["items"]}
    assert marks == {p: in_audit(p, 0.5) for p in ids} and sum(marks.values()) == 8
    assert all(i["duplicates"] == 1 for i in page["items"])  # no image hash: each its own
    newest = await api("GET", f"/v1/deployments/{dep['id']}/predictions", 200, params={"order": "newest"})
    assert [UUID(i["prediction_id"]) for i in newest["items"]] == ids[::-1]
    assert all(i["duplicates"] is None for i in newest["items"])
    one = await api("GET", f"/v1/predictions/{ids[0]}", 200)
    assert one["audit"] == in_audit(ids[0], 0.5) and one["uncertainty"] == 1.0

    bad = await api.raw("PUT", path, json=SETTINGS.model_dump() | {"outlier_weight": -1})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.outlier_weight"
    zero = {"uncertainty_weight": 0, "outlier_weight": 0, "disagreement_weight": 0}
    assert (await api.raw("PUT", path, json=SETTINGS.model_dump() | zero)).status_code == 422
    theirs = running.as_key((await new_project(running.pool)).write)
    assert (await theirs.raw("GET", path)).status_code == 404
    assert (await theirs.raw("PUT", path, json=SETTINGS.model_dump())).status_code == 404
    assert (await theirs.raw("GET", f"/v1/deployments/{dep['id']}/review-quality")).status_code == 404
    assert await api("GET", path, 200) == SETTINGS.model_dump()


async def test_quality_figures_rest_on_the_audit_slice(running: Running, project: Project, api: Api) -> None:
    dep = await queue_deployment(api)
    await api("PUT", f"/v1/deployments/{dep['id']}/review-queue", 200, json=SETTINGS.model_dump())
    ids = [await classified(running, project, dep, 800 + n, 0.9) for n in range(12)]
    # The champion says cat each time; it is wrong on three audited predictions, right on the others.
    truth = {p: "dog" if n in (0, 2, 4) else "cat" for n, p in enumerate(ids)}
    for p, label in truth.items():
        review = {"type": "classification", "classes": [label], "scores": [1.0]}
        await api("PUT", f"/v1/predictions/{p}/review", 200, json={"review": review})

    figures = await api("GET", f"/v1/deployments/{dep['id']}/review-quality", 200)
    audited = [p for p in ids if in_audit(p, 0.5)]
    assert figures["estimator"] == "audit_slice" and figures["audit_fraction"] == 0.5
    assert figures["reviewed"] == 12 and figures["audit_reviewed"] == len(audited) == 6
    assert figures["champion"]["reviewed"] == 6
    assert figures["champion"]["accuracy"] == 3 / 6
    assert figures["champion_all_reviews"]["accuracy"] == 9 / 12
    assert figures["shadow"] == {}
