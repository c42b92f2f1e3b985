"""The control plane over HTTP, against the real Postgres, Kafka-protocol broker and S3: auth and
project scoping, the registry, deployments and their events, pipeline settings, review and atomic
submission, jobs, and the outbox that keeps a committed change's events when the broker is down."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest

from cvloop.demo import architectures
from cvloop.demo.architectures import Architecture
from cvloop.demo.digits import DIGITS_IO, SIDE
from schemas.api.common import ErrorBody
from schemas.events import (
    AssetSubmitted,
    DeploymentUpdated,
    JobRequested,
    PredictionReviewed,
)
from schemas.model_io import ModelIO
from schemas.model_version import IO_FILE, MODEL_FILE
from schemas.topics import Topic
from schemas.triggers import TriggerFired
from schemas.vocabulary import OutputFormat, ReferenceStatus, RunStatus, TriggerRule
from services.common.db.repositories import deployments, experiments, jobs, predicted_assets
from services.common.db.repositories.base import Conflict
from services.common.domain.deployments import ContinuousTraining
from services.common.domain.model_signature import roles
from services.common.domain.onnx_graphs import dense_classifier
from services.common.kafka.producer import EventProducer
from tests.api_support import (
    MAX_UPLOAD,
    Api,
    Project,
    Running,
    new_project,
    png,
    published,
    recorded_prediction,
)

BOX = {"type": "detection", "boxes": [[1, 2, 30, 40]], "classes": ["cat"], "scores": [0.9]}
POLYGON = {
    "type": "segmentation",
    "polygons": [[[2, 2], [30, 4], [20, 40]]],
    "classes": ["cat"],
    "scores": [0.8],
}


# --- a small world built through the API ------------------------------------------------------------


async def upload_image(api: Api, seed: int) -> dict[str, Any]:
    return await api(
        "POST", "/v1/uploads", 201, params={"kind": "images"}, files={"file": ("x.png", png(seed))}
    )


async def model_version(
    api: Api, labels: list[str] | None = None, detection_type: str = "detection", **extra: Any
) -> dict[str, Any]:
    labelmap = await api(
        "POST",
        "/v1/labelmaps",
        201,
        json={"name": f"lm-{uuid4().hex[:6]}", "labels": labels or ["cat", "dog"]},
    )
    model = await api("POST", "/v1/models", 201, json={"name": f"model-{uuid4().hex[:6]}"})
    body = {"version": "1", "detection_type": detection_type, "labelmap_id": labelmap["id"]} | extra
    return await api("POST", f"/v1/models/{model['id']}/versions", 201, json=body)


async def dataset_version(
    api: Api, labelmap_id: str | None, detection_type: str = "detection"
) -> dict[str, Any]:
    dataset = await api("POST", "/v1/datasets", 201, json={"name": f"ds-{uuid4().hex[:6]}"})
    body = {"version": "v1", "detection_type": detection_type, "labelmap_id": labelmap_id}
    return await api("POST", f"/v1/datasets/{dataset['id']}/versions", 201, json=body)


async def deployment(api: Api, version: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {
        "name": f"dep-{uuid4().hex[:6]}",
        "kind": "monitoring_only",
        "model_version_id": version["id"],
    } | extra
    return await api("POST", "/v1/deployments", 201, json=body)


async def logged_prediction(
    running: Running,
    project: Project,
    dep: dict[str, Any],
    upload: dict[str, Any],
    *,
    shadow: dict[str, Any] | None = None,
    latency_ms: float = 3.0,
    answer: dict[str, Any] = BOX,
) -> UUID:
    """A prediction (the champion's `answer`) as ingest's persistence consumer records it, with the
    deployment's shadow answer if given (which takes twice as long)."""
    event = recorded_prediction(dep, upload, answer, shadow=shadow, latency_ms=latency_ms, tags=["camera-1"])
    assert await predicted_assets.insert_prediction(running.pool, project.id, event)
    return event.prediction_id


def of_deployment(deployment_id: str) -> Any:
    return lambda event: str(event.deployment_id) == deployment_id


# --- auth and project scoping ---------------------------------------------------------------------


async def test_a_missing_or_wrong_key_is_401_and_a_missing_scope_403(
    running: Running, project: Project
) -> None:
    for secret in (None, "cvl_not-a-key"):
        answer = await running.as_key(secret).raw("GET", "/v1/project")
        assert answer.status_code == 401
        assert answer.json()["errors"][0]["field"] == "authorization"
        assert answer.headers["www-authenticate"] == "Bearer"

    reader = running.as_key(project.read)
    assert (await reader("GET", "/v1/project", 200))["id"] == str(project.id)
    refused = await reader.raw("POST", "/v1/models", json={"name": "m"})
    assert refused.status_code == 403 and "write scope" in refused.json()["detail"]
    assert (await running.as_key(project.write).raw("GET", "/v1/api-keys")).status_code == 403

    admin = running.as_key(project.admin)
    created = await admin("POST", "/v1/api-keys", 201, json={"name": "ci", "scopes": ["read"]})
    assert created["secret"].startswith("cvl_")
    listed = await admin("GET", "/v1/api-keys", 200)
    assert created["id"] in {k["id"] for k in listed["items"]} and "secret" not in listed["items"][0]
    assert (await running.as_key(created["secret"]).raw("GET", "/v1/project")).status_code == 200
    await admin("DELETE", f"/v1/api-keys/{created['id']}", 204)
    assert (await running.as_key(created["secret"]).raw("GET", "/v1/project")).status_code == 401


async def test_another_projects_resources_answer_404_like_missing_ones(
    running: Running, project: Project
) -> None:
    mine = running.as_key(project.write)
    version = await model_version(mine)
    dep = await deployment(mine, version)
    dv = await dataset_version(mine, version["labelmap_id"])
    prediction = await logged_prediction(running, project, dep, await upload_image(mine, 1))

    other = await new_project(running.pool)
    theirs = running.as_key(other.write)
    for path in (
        f"/v1/deployments/{dep['id']}",
        f"/v1/model-versions/{version['id']}",
        f"/v1/dataset-versions/{dv['id']}",
        f"/v1/predictions/{prediction}",
        f"/v1/labelmaps/{version['labelmap_id']}",
        f"/v1/deployments/{dep['id']}/predictions",
    ):
        foreign = await theirs.raw("GET", path)
        missing = await theirs.raw("GET", path.replace(path.split("/")[3], str(uuid4())))
        assert foreign.status_code == missing.status_code == 404, path
        assert foreign.json()["errors"][0]["field"] == missing.json()["errors"][0]["field"]
    # Their key cannot point their deployment at my model version, nor review my prediction.
    their_dep = await deployment(theirs, await model_version(theirs))
    answer = await theirs.raw(
        "PUT", f"/v1/deployments/{their_dep['id']}/shadow", json={"model_version_id": version["id"]}
    )
    assert answer.status_code == 404 and answer.json()["errors"][0]["field"] == "body.model_version_id"
    assert (
        await theirs.raw("PUT", f"/v1/predictions/{prediction}/review", json={"review": BOX})
    ).status_code == 404
    assert (await theirs("GET", "/v1/deployments", 200))["items"] == [
        await theirs("GET", f"/v1/deployments/{their_dep['id']}", 200)
    ]
    # Continuous training runs in the key's project only.
    answer = await mine.raw(
        "PUT",
        f"/v1/deployments/{dep['id']}/continuous-training",
        json={"project_id": str(other.id), "threshold": 5},
    )
    assert answer.status_code == 404 and answer.json()["errors"][0]["field"] == "body.project_id"


async def test_bad_input_names_the_field(api: Api) -> None:
    answer = await api.raw(
        "POST", "/v1/deployments", json={"name": "d", "kind": "sideways", "model_version_id": "x"}
    )
    assert answer.status_code == 422
    assert {e["field"] for e in answer.json()["errors"]} == {"body.kind", "body.model_version_id"}
    answer = await api.raw("GET", f"/v1/deployments/{uuid4()}/predictions", params={"min_outlier_score": 2})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "query.min_outlier_score"
    answer = await api.raw("POST", "/v1/labelmaps", json={"name": "l", "labels": ["a", "a"]})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body.labels"
    answer = await api.raw(
        "POST", "/v1/uploads", params={"kind": "images"}, files={"file": ("x.png", b"not an image")}
    )
    assert answer.status_code == 415 and answer.json()["errors"][0]["field"] == "body.file"
    await api("POST", "/v1/models", 201, json={"name": "twice"})
    answer = await api.raw("POST", "/v1/models", json={"name": "twice"})
    assert answer.status_code == 409 and answer.json()["errors"][0]["field"] == "body.name"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        pytest.param("GET", "/v1/models", {"params": {"name": "a\x00b"}}, "query.name", id="nul-in-a-query"),
        pytest.param(
            "GET", "/v1/deployments", {"params": {"offset": 2**63}}, "query.offset", id="offset-past-int64"
        ),
        pytest.param(
            "GET",
            "/v1/deployments/{deployment}/predictions",
            {"params": {"tags": ["a\x00"]}},
            "query.tags[0]",
            id="nul-tag",
        ),
        pytest.param(
            "POST", "/v1/models", {"json": {"name": "nul\x00name"}}, "body.name", id="nul-in-a-name"
        ),
        pytest.param(
            "POST",
            "/v1/models",
            {"json": {"name": "m", "description": "\x1b[2J"}},
            "body.description",
            id="escape-code",
        ),
        pytest.param(
            "PUT",
            "/v1/deployments/{deployment}/continuous-training",
            {"json": {"threshold": 2**31, "active": True}},
            "body.threshold",
            id="threshold-past-int32",
        ),
        pytest.param(
            "PUT",
            "/v1/deployments/{deployment}/threshold",
            {"content": b'{"confidence_threshold": NaN}', "headers": {"Content-Type": "application/json"}},
            "body.confidence_threshold",
            id="nan-threshold",
        ),
        pytest.param(
            "POST",
            "/v1/experiments",
            {"json": {"name": "e", "parameters": {"n": 2**64}}},
            "body.parameters",
            id="int-past-64-bits-in-parameters",
        ),
    ],
)
async def test_what_postgres_would_refuse_is_a_422_naming_the_field(
    api: Api, method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    """Each of these answered 500 when Postgres or orjson refused it; now the schema does, first."""
    dep = await deployment(api, await model_version(api))
    answer = await api.raw(method, path.format(deployment=dep["id"]), **kwargs)
    assert answer.status_code == 422, answer.text
    assert ErrorBody.model_validate(answer.json()).errors[0].field == field, answer.text


# --- registry ------------------------------------------------------------------------------------


async def test_dataset_assets_carry_annotations_that_fit_the_version(api: Api) -> None:
    version = await model_version(api)
    dv = await dataset_version(api, version["labelmap_id"])
    image = await upload_image(api, 2)
    assert (await upload_image(api, 2))["object_key"] == image["object_key"]  # content-addressed

    bad_type = {"type": "classification", "classes": ["cat"], "scores": [1.0]}
    for annotation, field in (
        (bad_type, "body.annotation.type"),
        (BOX | {"boxes": [[0, 0, 65, 10]]}, "body.annotation.boxes[0]"),
        (BOX | {"classes": ["cow"]}, "body.annotation.classes[0]"),
    ):
        answer = await api.raw(
            "POST",
            f"/v1/dataset-versions/{dv['id']}/assets",
            json={"object_key": image["object_key"], "annotation": annotation},
        )
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == field, answer.text
    never_uploaded = image["object_key"].replace(image["sha256"], "0" * 64)
    answer = await api.raw(
        "POST", f"/v1/dataset-versions/{dv['id']}/assets", json={"object_key": never_uploaded}
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body.object_key"

    asset = await api(
        "POST",
        f"/v1/dataset-versions/{dv['id']}/assets",
        201,
        json={"object_key": image["object_key"], "annotation": BOX},
    )
    assert (asset["width"], asset["height"]) == (64, 48)
    listed = await api("GET", f"/v1/dataset-versions/{dv['id']}/assets", 200)
    assert listed["total"] == 1 and listed["items"][0]["annotations"][0]["shapes"]["boxes"] == [
        [1, 2, 30, 40]
    ]


async def test_model_versions_point_at_uploaded_files(api: Api) -> None:
    weights = await api(
        "POST",
        "/v1/uploads",
        201,
        params={"kind": "models"},
        files={"file": ("m.onnx", b"\x08\x07weights", "application/onnx")},
    )
    assert weights["object_key"].startswith("models/") and weights["size_bytes"] == 9
    version = await model_version(
        api, files={"model.onnx": weights["object_key"]}, training_parameters={"epochs": 3}
    )
    assert version["files"] == [
        {
            "name": "model.onnx",
            "object_key": weights["object_key"],
            "sha256": weights["sha256"],
            "size_bytes": 9,
        }
    ]
    missing = weights["object_key"].replace(weights["sha256"], "1" * 64)
    answer = await api.raw(
        "POST",
        f"/v1/models/{version['model_id']}/versions",
        json={"version": "2", "detection_type": "detection", "files": {"w": missing}},
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body.files.w"
    assert (await api("GET", f"/v1/models/{version['model_id']}/versions", 200))["total"] == 1
    too_large = await api.raw(
        "POST",
        "/v1/uploads",
        params={"kind": "models"},
        files={"file": ("big.onnx", b"0" * (MAX_UPLOAD + 1))},
    )
    assert too_large.status_code == 413 and too_large.json()["errors"][0]["field"] == "body.file"


async def test_export_experiment_as_a_new_model_or_a_new_version(
    running: Running, project: Project, api: Api
) -> None:
    base = await model_version(
        running.as_key(project.admin),  # a training entrypoint is code the platform runs
        training_parameters={"epochs": 3, "lr": 0.1},
        training_entrypoint="train.py",
        training_image="trainer:1",
    )
    dv = await dataset_version(api, base["labelmap_id"])
    experiment = await api(
        "POST",
        "/v1/experiments",
        201,
        json={
            "name": "exp",
            "base_model_version_id": base["id"],
            "parameters": {"epochs": 10},
            "dataset_versions": {"train": dv["id"]},
        },
    )
    weights = await api(
        "POST", "/v1/uploads", 201, params={"kind": "models"}, files={"file": ("best.onnx", b"best")}
    )
    await api(
        "POST",
        f"/v1/experiments/{experiment['id']}/artifacts",
        201,
        json={"name": "best.onnx", "object_key": weights["object_key"]},
    )
    assert len((await api("GET", f"/v1/experiments/{experiment['id']}", 200))["artifacts"]) == 1

    exported = await api(
        "POST",
        f"/v1/experiments/{experiment['id']}/export",
        201,
        json={"model_name": "exported", "version": "1"},
    )
    assert exported["source_experiment_id"] == experiment["id"]
    assert exported["training_parameters"] == {"epochs": 10, "lr": 0.1}
    assert (exported["detection_type"], exported["labelmap_id"]) == ("detection", base["labelmap_id"])
    assert (exported["training_entrypoint"], exported["training_image"]) == ("train.py", "trainer:1")
    assert exported["dataset_versions"] == {"train": dv["id"]}
    assert [f["object_key"] for f in exported["files"]] == [weights["object_key"]]

    again = await api(
        "POST",
        f"/v1/experiments/{experiment['id']}/export",
        201,
        json={"model_id": exported["model_id"], "version": "2"},
    )
    assert again["model_id"] == exported["model_id"]
    answer = await api.raw(
        "POST",
        f"/v1/experiments/{experiment['id']}/export",
        json={"model_id": exported["model_id"], "version": "2"},
    )
    assert answer.status_code == 409 and answer.json()["errors"][0]["field"] == "body.version"
    answer = await api.raw(
        "POST", f"/v1/experiments/{experiment['id']}/export", json={"model_name": "exported", "version": "1"}
    )
    assert answer.status_code == 409 and answer.json()["errors"][0]["field"] == "body.model_name"
    assert (await api("GET", "/v1/models", 200, params={"name": "exported"}))["total"] == 1
    orphan = await api("POST", "/v1/experiments", 201, json={"name": "no-base"})
    assert (
        await api.raw(
            "POST", f"/v1/experiments/{orphan['id']}/export", json={"model_name": "x", "version": "1"}
        )
    ).status_code == 409


async def test_an_exported_version_serves_with_the_io_its_trainer_wrote(
    running: Running, project: Project, api: Api
) -> None:
    """The experiment's io.json artifact is the exported version's io (the body's io still wins); one that
    is not a valid io fails the export naming it."""
    base = await model_version(api, labels=["cat", "dog"], detection_type="classification")
    experiment = await api(
        "POST", "/v1/experiments", 201, json={"name": "io", "base_model_version_id": base["id"]}
    )
    weights = np.zeros((SIDE * SIDE, 2), np.float32), np.zeros(2, np.float32)

    async def add(experiment_id: str, name: str, data: bytes) -> None:
        upload = await api(
            "POST", "/v1/uploads", 201, params={"kind": "models"}, files={"file": (name, data)}
        )
        body = {"name": name, "object_key": upload["object_key"]}
        await api("POST", f"/v1/experiments/{experiment_id}/artifacts", 201, json=body)

    await add(experiment["id"], MODEL_FILE, dense_classifier([weights], (1, SIDE, SIDE)))
    await add(experiment["id"], IO_FILE, DIGITS_IO.model_dump_json().encode())
    path = f"/v1/experiments/{experiment['id']}/export"
    exported = await api("POST", path, 201, json={"model_name": f"io-{uuid4().hex[:6]}", "version": "1"})
    assert base["io"] is None and ModelIO.model_validate(exported["io"]) == DIGITS_IO
    given = DIGITS_IO.model_copy(update={"scale": 1.0})
    body = {"model_id": exported["model_id"], "version": "2", "io": given.model_dump(mode="json")}
    assert ModelIO.model_validate((await api("POST", path, 201, json=body))["io"]) == given

    bad = await api(
        "POST", "/v1/experiments", 201, json={"name": "bad-io", "base_model_version_id": base["id"]}
    )
    await add(bad["id"], IO_FILE, b'{"width": 0, "height": 8}')
    answer = await api.raw(
        "POST", f"/v1/experiments/{bad['id']}/export", json={"model_id": exported["model_id"], "version": "3"}
    )
    (error,) = answer.json()["errors"]
    assert answer.status_code == 409 and error["field"] == "path.experiment_id"
    assert error["message"].startswith("io.json is not a valid io: width: Input should be greater than 0")
    assert (await api("GET", f"/v1/models/{exported['model_id']}/versions", 200))["total"] == 2


# --- deployments and their events --------------------------------------------------------------------


async def test_every_deployment_change_publishes_its_routing_state(running: Running, api: Api) -> None:
    champion = await model_version(api)
    shadow = await api(
        "POST",
        f"/v1/models/{champion['model_id']}/versions",
        201,
        json={"version": "2", "detection_type": "detection"},
    )
    dep = await deployment(api, champion, confidence_threshold=0.3)
    path = f"/v1/deployments/{dep['id']}"
    assert dep["detection_type"] == "detection" and dep["champion_model_version_id"] == champion["id"]

    other_type = await model_version(api, detection_type="classification")
    answer = await api.raw("PUT", f"{path}/shadow", json={"model_version_id": other_type["id"]})
    assert answer.status_code == 409 and answer.json()["errors"][0]["field"] == "body.model_version_id"
    assert (
        await api.raw("PUT", f"{path}/shadow", json={"model_version_id": champion["id"]})
    ).status_code == 409
    assert (await api.raw("POST", f"{path}/shadow/promote")).status_code == 409

    await api("PUT", f"{path}/shadow", 200, json={"model_version_id": shadow["id"]})
    promoted = await api("POST", f"{path}/shadow/promote", 200)
    assert (promoted["champion_model_version_id"], promoted["shadow_model_version_id"]) == (
        shadow["id"],
        None,
    )
    await api("PUT", f"{path}/shadow", 200, json={"model_version_id": champion["id"]})
    await api("DELETE", f"{path}/shadow", 200)
    await api("PUT", f"{path}/threshold", 200, json={"confidence_threshold": 0.6})
    await api("PUT", f"{path}/champion", 200, json={"model_version_id": champion["id"]})

    events = await published(running.settings, [Topic.DEPLOYMENTS], of_deployment(dep["id"]), 7, settle_s=1.0)
    assert all(isinstance(e, DeploymentUpdated) for e in events)
    assert [
        (e.change, e.champion_model_version_id, e.shadow_model_version_id, e.confidence_threshold)
        for e in events
    ] == [
        ("created", UUID(champion["id"]), None, 0.3),
        ("shadow_set", UUID(champion["id"]), UUID(shadow["id"]), 0.3),
        ("shadow_promoted", UUID(shadow["id"]), None, 0.3),
        ("shadow_set", UUID(shadow["id"]), UUID(champion["id"]), 0.3),
        ("shadow_removed", UUID(shadow["id"]), None, 0.3),
        ("settings_changed", UUID(shadow["id"]), None, 0.6),
        ("champion_set", UUID(champion["id"]), None, 0.6),
    ]


async def test_feedback_loop_refuses_another_labelmap_or_detection_type(api: Api) -> None:
    version = await model_version(api, labels=["cat", "dog"])
    dep = await deployment(api, version)
    same_labels = await api("POST", "/v1/labelmaps", 201, json={"name": "same", "labels": ["cat", "dog"]})
    reordered = await api("POST", "/v1/labelmaps", 201, json={"name": "reordered", "labels": ["dog", "cat"]})
    path = f"/v1/deployments/{dep['id']}/feedback-loop"
    for dv in (
        await dataset_version(api, reordered["id"]),
        await dataset_version(api, None),
        await dataset_version(api, version["labelmap_id"], detection_type="segmentation"),
    ):
        answer = await api.raw("PUT", f"{path}/{dv['id']}")
        assert answer.status_code == 409, answer.text
        assert answer.json()["errors"][0]["field"] == "path.dataset_version_id"
    good = await dataset_version(api, same_labels["id"])
    attached = await api("PUT", f"{path}/{good['id']}", 200)
    assert [v["id"] for v in attached["items"]] == [good["id"]]
    await api("PUT", f"{path}/{good['id']}", 200)  # attaching twice changes nothing
    assert (await api("GET", path, 200))["total"] == 1
    await api("DELETE", f"{path}/{good['id']}", 204)
    assert (await api.raw("DELETE", f"{path}/{good['id']}")).status_code == 404
    assert (await api("GET", path, 200))["items"] == []


async def test_training_data_requests_one_reference_job(running: Running, project: Project, api: Api) -> None:
    version = await model_version(api)
    dep = await deployment(api, version)
    dv = await dataset_version(api, version["labelmap_id"])
    path = f"/v1/deployments/{dep['id']}/training-data"
    assert await api("GET", path, 200) == {
        "dataset_version_id": None,
        "status": None,
        "reason": None,
        "job_id": None,
    }

    started = await api("PUT", path, 202, json={"dataset_version_id": dv["id"]})
    assert (started["dataset_version_id"], started["status"]) == (dv["id"], "computing")
    assert await api("PUT", path, 202, json={"dataset_version_id": dv["id"]}) == started  # no second job
    classification = await dataset_version(api, None, detection_type="classification")
    assert (await api.raw("PUT", path, json={"dataset_version_id": classification["id"]})).status_code == 409

    [requested] = await published(
        running.settings, [Topic.JOBS], lambda e: str(e.deployment_id) == dep["id"], 1, settle_s=1.0
    )
    assert isinstance(requested, JobRequested)
    assert (requested.kind, str(requested.job_id), str(requested.dataset_version_id)) == (
        "reference",
        started["job_id"],
        dv["id"],
    )
    job = await api("GET", f"/v1/jobs/{started['job_id']}", 200)
    assert job["kind"] == "reference" and job["runs"][0]["id"] == str(requested.run_id)

    # The scoring stream records the outcome; the API reports it.
    await deployments.set_reference_status(
        running.pool, project.id, UUID(dep["id"]), ReferenceStatus.READY, reference_id=uuid4()
    )
    assert (await api("GET", path, 200))["status"] == "ready"
    assert (await api("GET", f"/v1/deployments/{dep['id']}", 200))["training_data"]["status"] == "ready"


async def test_continuous_training_and_deployment_settings(api: Api) -> None:
    version = await model_version(api, training_parameters={"epochs": 3})
    dep = await deployment(api, version)
    dv = await dataset_version(api, version["labelmap_id"])
    path = f"/v1/deployments/{dep['id']}"
    assert (await api.raw("PATCH", f"{path}/continuous-training", json={"active": True})).status_code == 409
    answer = await api.raw("PUT", f"{path}/continuous-training", json={"active": True})
    assert answer.status_code == 422 and "threshold" in answer.json()["detail"]

    ct = await api(
        "PUT",
        f"{path}/continuous-training",
        200,
        json={"dataset_versions": {"train": dv["id"]}, "threshold": 20},
    )
    assert ct["training_parameters"] == {"epochs": 3}  # the champion's, by default
    assert (ct["threshold"], ct["active"], ct["dataset_versions"]) == (20, False, {"train": dv["id"]})
    assert (await api("PATCH", f"{path}/continuous-training", 200, json={"active": True}))["active"] is True

    cd = await api(
        "PUT", f"{path}/continuous-deployment", 200, json={"policy": "deploy_shadow", "active": True}
    )
    assert cd == {"policy": "deploy_shadow", "active": True}
    assert await api("PATCH", f"{path}/continuous-deployment", 200, json={"active": False}) == {
        "policy": "deploy_shadow",
        "active": False,
    }
    shown = await api("GET", path, 200)
    assert (
        shown["continuous_training"]["active"] and shown["continuous_deployment"]["policy"] == "deploy_shadow"
    )


async def test_a_trigger_policy_is_kept_and_the_rule_of_a_training_shown(
    running: Running, project: Project, api: Api
) -> None:
    dep = await deployment(api, await model_version(api))
    path = f"/v1/deployments/{dep['id']}/continuous-training"
    bad = await api.raw("PUT", path, json={"policy": {"drift": {"reports": 0}}, "active": True})
    assert bad.status_code == 422 and "body.policy.drift.reports" in bad.text
    bad = await api.raw("PUT", path, json={"policy": {"quality": {"reviews": 50}}})
    assert bad.status_code == 422 and "give below, drop or both" in bad.text
    policy = {
        "drift": {"reports": 3, "min_features": 2},
        "outlier_rate": {"level": 0.95, "window": 200, "rate": 0.2},
        "quality": {"reviews": 50, "below": 0.8, "drop": None},
        "cooldown_s": 3600.0,
        "min_submitted": 10,
    }
    # Active with no threshold: the rules alone trigger.
    ct = await api("PUT", path, 200, json={"policy": policy, "active": True})
    assert (ct["policy"], ct["threshold"], ct["active"]) == (policy, None, True)
    assert (ct["last_request_id"], ct["last_trigger"]) == (None, None)

    fired = TriggerFired(rule=TriggerRule.DRIFT, figures={"reports": 3.0, "submitted": 12.0})
    request = f"{dep['id']}:1"
    experiment = await experiments.create_experiment(
        running.pool, project.id, "line-4 #1", training_request_id=request, training_trigger=fired
    )
    shown = await api("GET", f"/v1/experiments/{experiment.id}", 200)
    assert shown["training_trigger"] == fired.model_dump(mode="json")
    ct = (await api("GET", f"/v1/deployments/{dep['id']}", 200))["continuous_training"]
    assert (ct["policy"], ct["last_request_id"], ct["last_trigger"]) == (
        policy,
        request,
        fired.model_dump(mode="json"),
    )


async def test_the_database_keeps_continuous_training_in_its_project(
    running: Running, project: Project
) -> None:
    api = running.as_key(project.write)
    dep = await deployment(api, await model_version(api))
    other = await new_project(running.pool)
    settings = ContinuousTraining(project_id=other.id, trigger_threshold=5)
    with pytest.raises(Conflict, match="deployments_ct_same_project"):
        await deployments.configure_continuous_training(running.pool, project.id, UUID(dep["id"]), settings)


# --- review and submission ----------------------------------------------------------------------


async def _review_world(
    running: Running, project: Project, api: Api, images: int
) -> tuple[dict[str, Any], dict[str, Any], list[UUID]]:
    version = await model_version(api)
    dep = await deployment(api, version)
    dv = await dataset_version(api, version["labelmap_id"])
    await api("PUT", f"/v1/deployments/{dep['id']}/feedback-loop/{dv['id']}", 200)
    uploads = [await upload_image(api, seed) for seed in range(100, 100 + images)]
    return dep, dv, [await logged_prediction(running, project, dep, u) for u in uploads]


async def test_review_states_move_one_way(running: Running, project: Project, api: Api) -> None:
    dep, dv, [first, second] = await _review_world(running, project, api, 2)
    shown = await api("GET", f"/v1/predictions/{first}", 200)
    assert shown["status"] == "TO_REVIEW" and shown["image_url"].startswith("http")

    answer = await api.raw(
        "PUT",
        f"/v1/predictions/{first}/review",
        json={"review": {"type": "classification", "classes": ["cat"], "scores": [1.0]}},
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body.review.type"
    for review, field in (
        (BOX | {"classes": ["cow"]}, "classes[0]"),
        (BOX | {"boxes": [[0, 0, 65, 9]]}, "boxes[0]"),
    ):
        answer = await api.raw("PUT", f"/v1/predictions/{first}/review", json={"review": review})
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == f"body.review.{field}"
    answer = await api.raw(
        "POST",
        f"/v1/deployments/{dep['id']}/predictions/submit",
        json={"dataset_version_id": dv["id"], "prediction_ids": [str(first)]},
    )
    assert answer.status_code == 409  # TO_REVIEW cannot be submitted

    corrected = BOX | {"classes": ["dog"]}
    assert (await api("PUT", f"/v1/predictions/{first}/review", 200, json={"review": BOX}))[
        "status"
    ] == "REVIEWED"
    assert (await api("PUT", f"/v1/predictions/{first}/review", 200, json={"review": corrected}))["review"][
        "classes"
    ] == ["dog"]
    queue = await api("GET", f"/v1/deployments/{dep['id']}/predictions", 200, params={"status": "TO_REVIEW"})
    assert [p["prediction_id"] for p in queue["items"]] == [str(second)] and queue["total"] == 1
    await api(
        "POST",
        f"/v1/deployments/{dep['id']}/predictions/submit",
        200,
        json={"dataset_version_id": dv["id"], "prediction_ids": [str(first)]},
    )
    answer = await api.raw("PUT", f"/v1/predictions/{first}/review", json={"review": BOX})
    assert answer.status_code == 409 and "final" in answer.json()["detail"]

    reviews = await published(running.settings, [Topic.REVIEWS], of_deployment(dep["id"]), 2, settle_s=1.0)
    assert [(type(e), e.prediction_id, e.review.classes) for e in reviews] == [
        (PredictionReviewed, first, ["cat"]),
        (PredictionReviewed, first, ["dog"]),
    ]


async def test_a_polygon_review_is_checked_at_the_door(running: Running, project: Project, api: Api) -> None:
    """Point counts, finite numbers, inside the image, a known class: each refusal a 422 naming the field;
    an edited polygon is stored and submitted as the annotation."""
    version = await model_version(api, detection_type="segmentation")
    dep = await deployment(api, version)
    dv = await dataset_version(api, version["labelmap_id"], detection_type="segmentation")
    await api("PUT", f"/v1/deployments/{dep['id']}/feedback-loop/{dv['id']}", 200)
    prediction = await logged_prediction(running, project, dep, await upload_image(api, 300), answer=POLYGON)
    path = f"/v1/predictions/{prediction}/review"
    triangle = [[2, 2], [30, 4], [20, 40]]
    refusals = [
        ("body.review.polygons[0]", POLYGON | {"polygons": [triangle[:2]]}),
        ("body.review.polygons[0]", POLYGON | {"polygons": [[[1, 1]] * 10_001]}),
        ("body.review.polygons[0]", POLYGON | {"polygons": [[[2, 2], [64.5, 4], [20, 40]]]}),
        ("body.review.classes[0]", POLYGON | {"classes": ["cow"]}),
    ]
    for field, review in refusals:
        answer = await api.raw("PUT", path, json={"review": review})
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == field, answer.json()
    infinite = b'{"review": {"type": "segmentation", "polygons": [[[2, 2], [Infinity, 4], [20, 40]]], '
    infinite += b'"classes": ["cat"], "scores": [1]}}'
    answer = await api.raw("PUT", path, content=infinite, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "body.review.polygons[0][1][0]", answer.json()

    edited = POLYGON | {"polygons": [[[2, 2], [33.5, 6.25], [20, 40], [4, 30]]], "classes": ["dog"]}
    assert (await api("PUT", path, 200, json={"review": edited}))["review"]["polygons"] == edited["polygons"]
    await api(
        "POST",
        f"/v1/deployments/{dep['id']}/predictions/submit",
        200,
        json={"dataset_version_id": dv["id"], "prediction_ids": [str(prediction)]},
    )
    [asset] = (await api("GET", f"/v1/dataset-versions/{dv['id']}/assets", 200))["items"]
    assert asset["annotations"][0]["shapes"]["polygons"] == edited["polygons"]
    assert asset["annotations"][0]["shapes"]["classes"] == ["dog"]


async def test_submission_is_all_or_nothing(running: Running, project: Project, api: Api) -> None:
    dep, dv, predictions = await _review_world(running, project, api, 3)
    reviewed, unreviewed, third = predictions
    for prediction in (reviewed, third):
        await api("PUT", f"/v1/predictions/{prediction}/review", 200, json={"review": BOX})
    submit = f"/v1/deployments/{dep['id']}/predictions/submit"
    assets = f"/v1/dataset-versions/{dv['id']}/assets"

    # The second of three cannot be submitted: the first stays as it was.
    answer = await api.raw(
        "POST",
        submit,
        json={"dataset_version_id": dv["id"], "prediction_ids": [str(reviewed), str(unreviewed), str(third)]},
    )
    assert answer.status_code == 409 and answer.json()["errors"][0]["field"] == "body.prediction_ids[1]"
    assert (await api("GET", f"/v1/predictions/{reviewed}", 200))["status"] == "REVIEWED"
    assert (await api("GET", assets, 200))["total"] == 0

    # The database fails in the middle (after the first asset was written): nothing is left half done.
    await running.pool.execute(f"""
        CREATE FUNCTION fail_{third.hex}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'disk full'; END $$;
        CREATE TRIGGER fail_{third.hex} BEFORE INSERT ON annotations FOR EACH ROW
            WHEN (NEW.prediction_id = '{third}') EXECUTE FUNCTION fail_{third.hex}();""")
    try:
        answer = await api.raw("POST", submit, json={"dataset_version_id": dv["id"], "all_reviewed": True})
        assert answer.status_code == 500
    finally:
        await running.pool.execute(
            f"DROP TRIGGER fail_{third.hex} ON annotations; DROP FUNCTION fail_{third.hex}"
        )
    assert {(await api("GET", f"/v1/predictions/{p}", 200))["status"] for p in (reviewed, third)} == {
        "REVIEWED"
    }
    assert (await api("GET", assets, 200))["total"] == 0

    done = await api("POST", submit, 200, json={"dataset_version_id": dv["id"], "all_reviewed": True})
    assert {s["prediction_id"] for s in done["submitted"]} == {str(reviewed), str(third)}
    listed = await api("GET", assets, 200)
    assert {a["id"] for a in listed["items"]} == {s["asset_id"] for s in done["submitted"]}
    assert all(a["annotations"][0]["prediction_id"] in {str(reviewed), str(third)} for a in listed["items"])
    shown = await api("GET", f"/v1/predictions/{reviewed}", 200)
    assert (shown["status"], shown["submitted_dataset_version_id"]) == ("SUBMITTED", dv["id"])
    # Submitting again answers the same and publishes nothing new.
    again = await api(
        "POST", submit, 200, json={"dataset_version_id": dv["id"], "prediction_ids": [str(reviewed)]}
    )
    assert again["submitted"] == [s for s in done["submitted"] if s["prediction_id"] == str(reviewed)]

    feedback = await published(running.settings, [Topic.FEEDBACK], of_deployment(dep["id"]), 2, settle_s=1.5)
    assert all(isinstance(e, AssetSubmitted) and e.dataset_version_id == UUID(dv["id"]) for e in feedback)
    assert sorted(str(e.asset_id) for e in feedback) == sorted(s["asset_id"] for s in done["submitted"])


async def test_submission_needs_a_feedback_loop_dataset_version(
    running: Running, project: Project, api: Api
) -> None:
    dep, _, [prediction] = await _review_world(running, project, api, 1)
    await api("PUT", f"/v1/predictions/{prediction}/review", 200, json={"review": BOX})
    detached = await dataset_version(api, None)
    answer = await api.raw(
        "POST",
        f"/v1/deployments/{dep['id']}/predictions/submit",
        json={"dataset_version_id": detached["id"], "all_reviewed": True},
    )
    assert answer.status_code == 409 and answer.json()["errors"][0]["field"] == "body.dataset_version_id"
    answer = await api.raw(
        "POST", f"/v1/deployments/{dep['id']}/predictions/submit", json={"dataset_version_id": detached["id"]}
    )
    assert answer.status_code == 422


async def test_prediction_list_filters_and_orders(running: Running, project: Project, api: Api) -> None:
    dep, _, predictions = await _review_world(running, project, api, 3)
    for score, prediction in zip((0.2, 0.9, 0.5), predictions, strict=True):
        await predicted_assets.set_outlier_score(running.pool, project.id, prediction, score)
    path = f"/v1/deployments/{dep['id']}/predictions"
    ordered = await api("GET", path, 200, params={"order": "most_outlying"})
    assert [p["outlier_score"] for p in ordered["items"]] == [0.9, 0.5, 0.2]
    middle = await api("GET", path, 200, params={"min_outlier_score": 0.3, "max_outlier_score": 0.6})
    assert [p["prediction_id"] for p in middle["items"]] == [str(predictions[2])]
    assert (await api("GET", path, 200, params={"tags": ["camera-1", "nope"]}))["total"] == 0
    page = await api("GET", path, 200, params={"tags": ["camera-1"], "limit": 2, "order": "oldest"})
    assert (len(page["items"]), page["total"]) == (2, 3)


# --- jobs and processings ------------------------------------------------------------------------


async def test_only_an_admin_key_registers_code_and_it_is_recorded(
    running: Running, project: Project, api: Api
) -> None:
    """A processing's command, a model version's training entrypoint or image run on the platform's
    machines: a write key gets 403 naming what it tried to set, an admin key's is recorded."""
    body = {"name": f"p-{uuid4().hex[:6]}", "command": ["psql", "postgresql://cvloop@127.0.0.1/cvloop"]}
    refused = await api.raw("POST", "/v1/processings", json=body)
    assert refused.status_code == 403 and "admin scope" in refused.json()["detail"]
    assert body["name"] not in {p["name"] for p in (await api("GET", "/v1/processings", 200))["items"]}
    admin = running.as_key(project.admin)
    registered = await admin("POST", "/v1/processings", 201, json=body)
    keys = {k["name"]: k["id"] for k in (await admin("GET", "/v1/api-keys", 200))["items"]}
    assert registered["created_by_key_id"] == keys["admin-key"]
    model = await api("POST", "/v1/models", 201, json={"name": f"model-{uuid4().hex[:6]}"})
    for field, value in (("training_entrypoint", "python evil.py"), ("training_image", "evil:1")):
        body = {"version": field, "detection_type": "detection", field: value}
        refused = await api.raw("POST", f"/v1/models/{model['id']}/versions", json=body)
        assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == f"body.{field}"
        answer = await admin("POST", f"/v1/models/{model['id']}/versions", 201, json=body)
        assert (answer[field], answer["created_by_key_id"]) == (value, keys["admin-key"])
    version = await model_version(api)  # a model version without code needs no more than write
    job = await api(
        "POST",
        f"/v1/model-versions/{version['id']}/processings",
        201,
        json={"processing_id": registered["id"]},
    )
    launched = {"key_id": keys["write-key"], "key_name": "write-key"}
    assert job["latest_run"]["launched_by"] == launched  # launching stays a write action, and is shown
    listed = await api("GET", "/v1/jobs", 200, params={"kind": "processing"})
    (shown,) = [j for j in listed["items"] if j["id"] == job["id"]]
    assert shown["latest_run"]["launched_by"] == launched and shown["latest_run"]["created_at"]


async def test_processing_jobs_are_requested_and_rerun(running: Running, project: Project, api: Api) -> None:
    version = await model_version(api)
    processing = await running.as_key(project.admin)(
        "POST",
        "/v1/processings",
        201,
        json={
            "name": "quantize",
            "command": ["python", "q.py"],
            "parameters_schema": {"properties": {"bits": {"type": "integer"}}, "required": ["bits"]},
        },
    )
    launch = f"/v1/model-versions/{version['id']}/processings"
    answer = await api.raw(
        "POST", launch, json={"processing_id": processing["id"], "parameters": {"bits": 8, "speed": 1}}
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body.parameters.speed"
    answer = await api.raw("POST", launch, json={"processing_id": processing["id"]})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body.parameters.bits"
    job = await api("POST", launch, 201, json={"processing_id": processing["id"], "parameters": {"bits": 8}})
    assert (job["kind"], job["latest_run"]["status"]) == ("processing", "pending")
    assert (await api.raw("POST", f"/v1/jobs/{job['id']}/rerun")).status_code == 409

    run_id = UUID(job["latest_run"]["id"])
    await jobs.start_run(running.pool, project.id, run_id)
    await jobs.append_logs(running.pool, project.id, run_id, [(0, "loading"), (1, "done")])
    await jobs.finish_run(running.pool, project.id, run_id, RunStatus.SUCCEEDED)
    logs = await api("GET", f"/v1/jobs/{job['id']}/logs", 200, params={"after": 0})
    assert logs == {"run_id": str(run_id), "lines": [{"number": 1, "text": "done"}], "finished": True}
    second = await api("POST", f"/v1/jobs/{job['id']}/rerun", 201)
    assert second["attempt"] == 2
    shown = await api("GET", f"/v1/jobs/{job['id']}", 200)
    assert [r["status"] for r in shown["runs"]] == ["succeeded", "pending"] and shown["runs"][0][
        "duration_s"
    ] >= 0
    assert job["id"] in {
        j["id"] for j in (await api("GET", "/v1/jobs", 200, params={"kind": "processing"}))["items"]
    }

    requested = await published(
        running.settings, [Topic.JOBS], lambda e: str(e.job_id) == job["id"], 2, settle_s=1.0
    )
    assert [(e.kind, e.run_id, e.model_version_id, e.parameters) for e in requested] == [
        ("processing", run_id, UUID(version["id"]), {"bits": 8}),
        ("processing", UUID(second["id"]), UUID(version["id"]), {"bits": 8}),
    ]


# --- the outbox and the service's own endpoints ------------------------------------------------------


async def test_events_of_a_change_survive_a_broker_outage(
    running: Running, project: Project, api: Api
) -> None:
    version = await model_version(api)
    dep = await deployment(api, version)
    context = running.app.state.context
    healthy = context.producer.producer
    stopped = EventProducer.from_settings(running.settings)  # never started: every publish fails
    context.producer.producer = stopped.producer
    try:
        await api("PUT", f"/v1/deployments/{dep['id']}/threshold", 200, json={"confidence_threshold": 0.7})
        assert await running.pool.fetchval("SELECT count(*) FROM outbox") >= 1
    finally:
        context.producer.producer = healthy
    events = await published(running.settings, [Topic.DEPLOYMENTS], of_deployment(dep["id"]), 2)
    assert [(e.change, e.confidence_threshold) for e in events] == [
        ("created", 0.0),
        ("settings_changed", 0.7),
    ]
    assert await running.pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_health_readiness_metrics_and_openapi(running: Running, api: Api) -> None:
    anonymous = running.as_key(None)
    assert (await anonymous.raw("GET", "/healthz")).status_code == 200
    assert (await anonymous.raw("GET", "/readyz")).status_code == 200
    await api("GET", "/v1/project", 200)
    metrics = (await anonymous.raw("GET", "/metrics")).text
    assert 'cvloop_api_requests_total{method="GET",route="/v1/project",status="200"}' in metrics
    assert "cvloop_outbox_published_total" in metrics
    spec = await anonymous("GET", "/openapi.json", 200)
    assert "/v1/deployments/{deployment_id}/predictions/submit" in spec["paths"]


# --- servability: registration and served deployments tell the truth ---------------------------------


async def _register(api: Api, architecture: Architecture, labels: list[str], **io_changes: Any) -> Any:
    """POST a model version of the architecture with its io changed as given; the raw answer."""
    upload = await api(
        "POST",
        "/v1/uploads",
        201,
        params={"kind": "models"},
        files={"file": ("model.onnx", architecture.onnx)},
    )
    labelmap = await api(
        "POST", "/v1/labelmaps", 201, json={"name": f"lm-{uuid4().hex[:6]}", "labels": labels}
    )
    model = await api("POST", "/v1/models", 201, json={"name": f"{architecture.name}-{uuid4().hex[:6]}"})
    body = {
        "version": "1",
        "detection_type": architecture.detection_type,
        "labelmap_id": labelmap["id"],
        "files": {"model.onnx": upload["object_key"]},
        "io": architecture.io.model_dump(mode="json") | io_changes,
    }
    return await api.raw("POST", f"/v1/models/{model['id']}/versions", json=body)


@pytest.mark.parametrize(
    "build", [architectures.yolov8, architectures.yolov5, architectures.nms_free, architectures.yolov8_seg]
)
async def test_every_unservable_registration_gets_its_422(api: Api, build: Any) -> None:
    architecture = build(classes=3)
    assert (await _register(api, architecture, architecture.labels)).status_code == 201
    refusals = {
        "body.io.width": await _register(api, architecture, architecture.labels, width=320),
        "body.io.color": await _register(api, architecture, architecture.labels, color="gray"),
        "body.io.dtype": await _register(api, architecture, architecture.labels, dtype="uint8"),
        "body.io.outputs.predictions": await _register(
            api, architecture, architecture.labels, outputs={"predictions": "absent", "detections": "absent"}
        ),
        "body.io.output_format": await _register(
            api, architecture, architecture.labels, output_format="logits"
        ),
    }
    if architecture.io.output_format != OutputFormat.NMS_FREE:  # its shape does not tell the class count
        refusals["body.labelmap_id"] = await _register(api, architecture, [*architecture.labels, "extra"])
    first_role = roles(architecture.detection_type, architecture.io.output_format)[0]
    for field, answer in refusals.items():
        assert answer.status_code == 422, (field, answer.text)
        [error] = answer.json()["errors"]
        assert error["field"] == field.replace("predictions", first_role), error


async def test_torchvision_segmenter_registers_and_without_masks_is_refused(api: Api) -> None:
    architecture = architectures.torchvision_mask_rcnn()
    assert (await _register(api, architecture, architecture.labels)).status_code == 201
    no_masks = await _register(
        api,
        architecture,
        architecture.labels,
        outputs={"boxes": "boxes", "labels": "labels", "scores": "scores"},
    )
    assert no_masks.status_code == 422 and no_masks.json()["errors"][0]["field"] == "body.io.outputs.masks"


async def test_a_served_deployment_of_an_unservable_version_is_refused(api: Api) -> None:
    version = await model_version(api)  # no io, no file
    body = {"name": f"dep-{uuid4().hex[:6]}", "kind": "served", "model_version_id": version["id"]}
    answer = await api.raw("POST", "/v1/deployments", json=body)
    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert error["field"] == "body.model_version_id" and "no io settings" in error["message"]
    await deployment(api, version)  # monitoring only needs no io
    servable = (await _register(api, architectures.yolov8(classes=2), ["a", "b"])).json()
    served = await deployment(api, servable, kind="served")
    for role in ("shadow", "champion"):
        answer = await api.raw(
            "PUT", f"/v1/deployments/{served['id']}/{role}", json={"model_version_id": version["id"]}
        )
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body.model_version_id"


async def test_a_classification_threshold_is_refused(api: Api) -> None:
    version = await model_version(api, detection_type="classification")
    body = {"name": f"dep-{uuid4().hex[:6]}", "kind": "monitoring_only", "model_version_id": version["id"]}
    answer = await api.raw("POST", "/v1/deployments", json=body | {"confidence_threshold": 0.4})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body.confidence_threshold"
    dep = await api("POST", "/v1/deployments", 201, json=body)
    answer = await api.raw(
        "PUT", f"/v1/deployments/{dep['id']}/threshold", json={"confidence_threshold": 0.4}
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body.confidence_threshold"
