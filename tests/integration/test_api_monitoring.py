"""The monitoring routes and the registry's gaps over HTTP, against the real Postgres, broker and S3: a
deployment's predictions, outlier scores and drift reports written through the repositories the ingest
and scoring streams use, with drifting features; labelmap lists, model-file downloads, and deletes
refused with 409 while something still uses what they delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import numpy as np

from schemas.events import (
    DeploymentChange,
    DeploymentUpdated,
    MultipleTestingCorrection,
)
from schemas.topics import Topic
from services.common.db.repositories import drift_reports, predicted_assets, prediction_scores
from services.common.db.repositories.base import Db
from services.common.domain.scoring import Score
from services.scoring.drift import DriftWindow, drift_report
from tests.api_support import Api, Project, Running, new_project, published, recorded_prediction
from tests.integration.test_api import dataset_version, deployment, model_version, upload_image

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CAT = {"type": "classification", "classes": ["cat", "dog"], "scores": [0.9, 0.1]}
DOG = {"type": "classification", "classes": ["cat", "dog"], "scores": [0.2, 0.8]}
FEATURES = ("brightness", "contrast", "sharpness")


async def classified(
    running: Running,
    project: Project,
    dep: dict[str, Any],
    seed: int,
    at: datetime,
    latency_ms: float,
    *,
    shadow: bool = False,
) -> UUID:
    """A prediction recorded as ingest's persistence records it: the champion says cat, the shadow (if
    asked, twice as slow) dog."""
    upload = await upload_image(running.as_key(project.write), seed)
    event = recorded_prediction(
        dep, upload, CAT, shadow=DOG if shadow else None, latency_ms=latency_ms, predicted_at=at
    )
    assert await predicted_assets.insert_prediction(running.pool, project.id, event)
    return event.prediction_id


async def store_drift_reports(db: Db, project_id: UUID, deployment_id: UUID) -> None:
    """Two windows as the scoring stream tests them against one reference: the first like the training
    data, the second shifted by three standard deviations."""
    rng = np.random.default_rng(7)
    reference = np.sort(rng.normal(0.0, 1.0, (500, len(FEATURES))), axis=0)
    reference_id = uuid4()
    for total, (shift, at) in enumerate([(0.0, START), (3.0, START + HOUR)], start=1):
        window = DriftWindow(
            reference_id,
            rng.normal(shift, 1.0, (200, len(FEATURES))),
            np.linspace(at.timestamp(), at.timestamp() + 600, 200),
            total * 200,
        )
        report = drift_report(
            window,
            reference,
            FEATURES,
            deployment_id=deployment_id,
            alpha=0.01,
            correction=MultipleTestingCorrection.BONFERRONI,
        )
        assert await drift_reports.insert_drift_report(db, project_id, report)


async def monitored_deployment(
    running: Running, project: Project, api: Api
) -> tuple[dict[str, Any], list[UUID]]:
    """A classification deployment with a shadow, five predictions over two hours, outlier scores on
    each, two of the first hour reviewed as cat, and a drift report per hour (the second drifted)."""
    champion = await model_version(api, detection_type="classification")
    shadow = await api(
        "POST",
        f"/v1/models/{champion['model_id']}/versions",
        201,
        json={"version": "2", "detection_type": "classification", "labelmap_id": champion["labelmap_id"]},
    )
    dep = await deployment(api, champion)
    dep = await api(
        "PUT", f"/v1/deployments/{dep['id']}/shadow", 200, json={"model_version_id": shadow["id"]}
    )
    seed = int(uuid4()) % 10**6
    first_hour = [
        await classified(
            running, project, dep, seed + i, START + i * timedelta(minutes=10), latency, shadow=True
        )
        for i, latency in enumerate([10.0, 20.0, 30.0])
    ]
    second_hour = [
        await classified(
            running, project, dep, seed + 10 + i, START + HOUR + i * timedelta(minutes=10), latency
        )
        for i, latency in enumerate([100.0, 200.0])
    ]
    predictions = first_hour + second_hour
    await prediction_scores.record_outlier_scores(
        running.pool,
        project.id,
        UUID(dep["id"]),
        uuid4(),
        [Score(p, s) for p, s in zip(predictions, [0.15, 0.55, 0.995, 0.999, 0.25], strict=True)],
    )
    for prediction in first_hour[:2]:
        await api("PUT", f"/v1/predictions/{prediction}/review", 200, json={"review": CAT})
    await store_drift_reports(running.pool, project.id, UUID(dep["id"]))
    return dep, predictions


RANGE = {"start": START.isoformat(), "end": (START + 2 * HOUR).isoformat(), "bucket_s": 3600}


async def test_monitoring_of_a_drifting_deployment_bucket_by_bucket(
    running: Running, project: Project, api: Api
) -> None:
    dep, _ = await monitored_deployment(running, project, api)
    base = f"/v1/deployments/{dep['id']}/monitoring"
    reader = running.as_key(project.read)

    drift = await reader("GET", f"{base}/drift", 200, params=RANGE)
    assert drift["total"] == 2
    calm, drifted = drift["items"]
    assert not calm["drift_detected"] and drifted["drift_detected"]
    assert drifted["correction"] == "bonferroni" and drifted["window_size"] == 200
    assert {f["feature"] for f in drifted["features"] if f["drifted"]} == set(FEATURES)
    assert all(f["p_value"] < 0.01 / len(FEATURES) for f in drifted["features"])
    flagged = await reader("GET", f"{base}/drift", 200, params=RANGE | {"flagged": True})
    assert [r["id"] for r in flagged["items"]] == [drifted["id"]]
    a_year = {"start": "2025-06-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"}  # drift takes no buckets
    assert (await reader("GET", f"{base}/drift", 200, params=a_year))["total"] == 2
    later = await reader("GET", f"{base}/drift", 200, params=RANGE | {"start": (START + HOUR).isoformat()})
    assert [r["id"] for r in later["items"]] == [drifted["id"]]

    latency = await reader("GET", f"{base}/latency", 200, params=RANGE)
    rows = {(b["start"][:13], b["role"]): b for b in latency["buckets"]}
    assert set(rows) == {
        ("2026-01-05T00", "champion"),
        ("2026-01-05T00", "shadow"),
        ("2026-01-05T01", "champion"),
    }
    assert rows["2026-01-05T00", "champion"]["predictions"] == 3
    assert rows["2026-01-05T00", "champion"]["latency_p50_ms"] == 20.0
    assert rows["2026-01-05T00", "shadow"]["latency_p50_ms"] == 40.0
    assert rows["2026-01-05T01", "champion"]["latency_p50_ms"] == 150.0  # between 100 and 200
    assert rows["2026-01-05T01", "champion"]["latency_p95_ms"] == 195.0

    outliers = await reader("GET", f"{base}/outliers", 200, params=RANGE | {"bins": 10, "level": 0.99})
    assert [b["count"] for b in outliers["histogram"]] == [0, 1, 1, 0, 0, 1, 0, 0, 0, 2]
    assert [(b["scored"], b["above"]) for b in outliers["buckets"]] == [(3, 1), (2, 1)]
    assert outliers["buckets"][0]["rate"] == 1 / 3

    quality = await reader("GET", f"{base}/quality", 200, params=RANGE)
    assert quality["reviewed"] == 2 and not quality["truncated"]
    by_role = {b["role"]: b for b in quality["buckets"]}
    assert by_role["champion"]["quality"] == {"accuracy": 1.0, "reviewed": 2.0}
    assert by_role["shadow"]["quality"] == {"accuracy": 0.0, "reviewed": 2.0}
    assert by_role["shadow"]["model_version_ids"] == [dep["shadow_model_version_id"]]

    # A range outside the data answers empty buckets, not an error.
    empty = await reader(
        "GET",
        f"{base}/latency",
        200,
        params=RANGE | {"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z"},
    )
    assert empty["buckets"] == []


async def test_the_grid_filters_on_the_time_monitoring_uses(
    running: Running, project: Project, api: Api
) -> None:
    """A drift window's range in prediction time finds its predictions, most outlying first, although
    they were all logged (created) just now."""
    dep, predictions = await monitored_deployment(running, project, api)
    window = {
        "predicted_since": (START + HOUR).isoformat(),
        "predicted_until": (START + 2 * HOUR).isoformat(),
    }
    listed = await api(
        "GET", f"/v1/deployments/{dep['id']}/predictions", 200, params=window | {"order": "most_outlying"}
    )
    assert [i["prediction_id"] for i in listed["items"]] == [str(p) for p in predictions[3:]]
    counted = await api("GET", f"/v1/deployments/{dep['id']}/predictions/count", 200, params=window)
    assert counted["count"] == 2
    by_log_time = {"since": (START + HOUR).isoformat(), "until": (START + 2 * HOUR).isoformat()}
    assert (await api("GET", f"/v1/deployments/{dep['id']}/predictions", 200, params=by_log_time))[
        "total"
    ] == 0


async def test_monitoring_ranges_are_checked_and_projects_kept_apart(
    running: Running, project: Project, api: Api
) -> None:
    dep = await deployment(api, await model_version(api))
    base = f"/v1/deployments/{dep['id']}/monitoring"
    too_fine = await api.raw("GET", f"{base}/latency", params=RANGE | {"bucket_s": 1})
    assert too_fine.status_code == 422 and too_fine.json()["errors"][0]["field"] == "query.bucket_s"
    backwards = await api.raw("GET", f"{base}/outliers", params=RANGE | {"start": RANGE["end"]})
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "query.start"

    theirs = running.as_key((await new_project(running.pool)).read)
    for route in ("drift", "outliers", "latency", "quality"):
        assert (await api.raw("GET", f"{base}/{route}")).status_code == 200, route
        foreign = await theirs.raw("GET", f"{base}/{route}")
        assert foreign.status_code == 404 and foreign.json()["errors"][0]["field"] == "path.deployment_id"


async def test_labelmaps_are_listed_per_project(running: Running, project: Project, api: Api) -> None:
    made = [
        await api("POST", "/v1/labelmaps", 201, json={"name": f"lm-{i}", "labels": ["a", "b"]})
        for i in range(3)
    ]
    page = await api("GET", "/v1/labelmaps", 200, params={"limit": 2})
    assert page["total"] == 3 and [m["id"] for m in page["items"]] == [m["id"] for m in made[:2]]
    rest = await api("GET", "/v1/labelmaps", 200, params={"limit": 2, "offset": 2})
    assert [m["id"] for m in rest["items"]] == [made[2]["id"]]
    assert (await api("GET", "/v1/labelmaps", 200, params={"name": "lm-1"}))["items"] == [made[1]]
    theirs = running.as_key((await new_project(running.pool)).read)
    assert (await theirs("GET", "/v1/labelmaps", 200)) == {"items": [], "total": 0}


async def test_model_files_download_through_presigned_urls_of_the_project(
    running: Running, project: Project, api: Api
) -> None:
    weights = bytes(range(256)) * 64
    upload = await api(
        "POST", "/v1/uploads", 201, params={"kind": "models"}, files={"file": ("model.onnx", weights)}
    )
    version = await model_version(api, files={"model.onnx": upload["object_key"]})
    [item] = await running.as_key(project.read)("GET", f"/v1/model-versions/{version['id']}/files", 200)
    assert item["name"] == "model.onnx" and item["sha256"] == upload["sha256"]
    assert datetime.fromisoformat(item["expires_at"]) > datetime.now(UTC)
    async with httpx.AsyncClient() as plain:  # no API key: the URL carries its own signature
        answer = await plain.get(item["url"])
    assert answer.status_code == 200 and answer.content == weights

    theirs = running.as_key((await new_project(running.pool)).read)
    foreign = await theirs.raw("GET", f"/v1/model-versions/{version['id']}/files")
    assert foreign.status_code == 404 and foreign.json()["errors"][0]["field"] == "path.model_version_id"


async def test_deletes_answer_409_naming_what_still_uses_the_object(
    running: Running, project: Project, api: Api
) -> None:
    version = await model_version(api, detection_type="classification")
    dep = await deployment(api, version)
    reader = running.as_key(project.read)
    admin = running.as_key(project.admin)  # registering a processing registers code: the admin scope
    theirs = running.as_key((await new_project(running.pool)).write)

    # A model version a deployment serves, then one no one uses.
    used = await api.raw("DELETE", f"/v1/model-versions/{version['id']}")
    assert used.status_code == 409 and f"deployment {dep['name']!r} (champion)" in used.json()["detail"]
    spare = await api(
        "POST",
        f"/v1/models/{version['model_id']}/versions",
        201,
        json={"version": "spare", "detection_type": "classification"},
    )
    assert (await reader.raw("DELETE", f"/v1/model-versions/{spare['id']}")).status_code == 403
    assert (await theirs.raw("DELETE", f"/v1/model-versions/{spare['id']}")).status_code == 404
    await api("DELETE", f"/v1/model-versions/{spare['id']}", 204)
    assert (await api.raw("GET", f"/v1/model-versions/{spare['id']}")).status_code == 404

    # A processing a job ran, then one never run.
    ran = await admin("POST", "/v1/processings", 201, json={"name": "ran", "command": ["true"]})
    await api(
        "POST", f"/v1/model-versions/{version['id']}/processings", 201, json={"processing_id": ran["id"]}
    )
    refused = await api.raw("DELETE", f"/v1/processings/{ran['id']}")
    assert refused.status_code == 409 and "1 jobs" in refused.json()["detail"]
    unused = await admin("POST", "/v1/processings", 201, json={"name": "unused", "command": ["true"]})
    assert (await reader.raw("DELETE", f"/v1/processings/{unused['id']}")).status_code == 403
    assert (await theirs.raw("DELETE", f"/v1/processings/{unused['id']}")).status_code == 404
    await api("DELETE", f"/v1/processings/{unused['id']}", 204)
    assert [p["id"] for p in (await api("GET", "/v1/processings", 200))["items"]] == [ran["id"]]

    # A dataset asset a submitted prediction became, then a plain one.
    dv = await dataset_version(api, version["labelmap_id"], detection_type="classification")
    await api("PUT", f"/v1/deployments/{dep['id']}/feedback-loop/{dv['id']}", 200)
    prediction = await classified(running, project, dep, int(uuid4()) % 10**6, START, 5.0)
    await api("PUT", f"/v1/predictions/{prediction}/review", 200, json={"review": CAT})
    [submitted] = (
        await api(
            "POST",
            f"/v1/deployments/{dep['id']}/predictions/submit",
            200,
            json={"dataset_version_id": dv["id"], "prediction_ids": [str(prediction)]},
        )
    )["submitted"]
    assets = f"/v1/dataset-versions/{dv['id']}/assets"
    refused = await api.raw("DELETE", f"{assets}/{submitted['asset_id']}")
    assert refused.status_code == 409 and f"submitted prediction {prediction}" in refused.json()["detail"]
    plain = await api("POST", assets, 201, json={"object_key": (await upload_image(api, 77))["object_key"]})
    assert (await reader.raw("DELETE", f"{assets}/{plain['id']}")).status_code == 403
    assert (
        await theirs.raw("DELETE", f"/v1/dataset-versions/{dv['id']}/assets/{plain['id']}")
    ).status_code == 404
    await api("DELETE", f"{assets}/{plain['id']}", 204)
    assert [a["id"] for a in (await api("GET", assets, 200))["items"]] == [submitted["asset_id"]]

    # The model version made predictions: it stays even once no deployment serves it.
    successor = await api(
        "POST",
        f"/v1/models/{version['model_id']}/versions",
        201,
        json={"version": "successor", "detection_type": "classification"},
    )
    await api("PUT", f"/v1/deployments/{dep['id']}/champion", 200, json={"model_version_id": successor["id"]})
    refused = await api.raw("DELETE", f"/v1/model-versions/{version['id']}")
    assert refused.status_code == 409 and "1 recorded predictions" in refused.json()["detail"]
    assert "deployment" not in refused.json()["detail"]


async def test_a_deleted_deployment_goes_with_its_predictions_and_tells_serving(
    running: Running, project: Project, api: Api
) -> None:
    version = await model_version(api, detection_type="classification")
    dep = await deployment(api, version)
    prediction = await classified(running, project, dep, int(uuid4()) % 10**6, START, 5.0)
    await store_drift_reports(running.pool, project.id, UUID(dep["id"]))
    assert (
        await running.as_key(project.read).raw("DELETE", f"/v1/deployments/{dep['id']}")
    ).status_code == 403
    theirs = running.as_key((await new_project(running.pool)).write)
    assert (await theirs.raw("DELETE", f"/v1/deployments/{dep['id']}")).status_code == 404

    await api("DELETE", f"/v1/deployments/{dep['id']}", 204)
    assert (await api.raw("GET", f"/v1/deployments/{dep['id']}")).status_code == 404
    assert (await api.raw("GET", f"/v1/predictions/{prediction}")).status_code == 404
    assert (
        await running.pool.fetchval(
            "SELECT count(*) FROM drift_reports WHERE deployment_id = $1", UUID(dep["id"])
        )
        == 0
    )
    [event] = await published(
        running.settings,
        [Topic.DEPLOYMENTS],
        lambda e: (
            isinstance(e, DeploymentUpdated)
            and str(e.deployment_id) == dep["id"]
            and e.change == DeploymentChange.DELETED
        ),
        1,
    )
    assert event.champion_model_version_id == UUID(version["id"])

    # A deployment whose reference job is still pending cannot go from under it.
    busy = await deployment(api, version)
    dv = await dataset_version(api, version["labelmap_id"], detection_type="classification")
    training = await api(
        "PUT", f"/v1/deployments/{busy['id']}/training-data", 202, json={"dataset_version_id": dv["id"]}
    )
    refused = await api.raw("DELETE", f"/v1/deployments/{busy['id']}")
    assert refused.status_code == 409 and f"active job {training['job_id']}" in refused.json()["detail"]
