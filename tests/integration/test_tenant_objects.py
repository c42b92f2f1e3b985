"""Objects belong to projects, against the real servers: the api (on the session's database) and ingest (as
it runs, `python -m services.ingest`). Project A knows the sha256 of B's image and model file; each place
that takes an object key answers A's reference to them exactly as it answers a key nobody uploaded, and
no presigned URL of B's bytes reaches A. Names that are paths are refused at registration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from cvloop.stack import stack
from schemas.events import PredictionSource, RawPrediction, RoleResult
from schemas.object_keys import ObjectKind
from schemas.topics import Topic
from services.common.db.repositories import experiments, predicted_assets
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore
from tests import samples
from tests.api_support import Api, Project, Running, new_project, png, published, running_app

BOX = {"type": "detection", "boxes": [[1, 2, 30, 40]], "classes": ["cat"], "scores": [0.9]}
# The monitor fields besides the image, for a detection deployment.
MONITORED = {"width": 64, "height": 48, "champion": {"prediction": BOX, "latency_ms": 5.0}}


@pytest.fixture(scope="module")
def ingest_settings(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings
) -> Iterator[Settings]:
    for health in stack.up(postgres_settings, ["ingest"]):
        assert health.ok, health
    yield postgres_settings
    for _ in stack.down(postgres_settings, ["ingest"]):
        pass


@pytest.fixture(scope="module")
async def running(ingest_settings: Settings) -> AsyncIterator[Running]:
    """The api on the database ingest reads, so both see the same uploads."""
    async for app in running_app(ingest_settings, ingest_settings.database_url):
        yield app


@pytest.fixture
async def ingest(ingest_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ingest_settings.ingest_port}", timeout=30) as c:
        yield c


async def _upload(api: Api, kind: str, content: bytes) -> dict[str, Any]:
    return await api("POST", "/v1/uploads", 201, params={"kind": kind}, files={"file": ("f", content)})


async def _model_version(api: Api, **extra: Any) -> dict[str, Any]:
    labelmap = await api(
        "POST", "/v1/labelmaps", 201, json={"name": f"lm-{uuid4().hex[:6]}", "labels": ["cat"]}
    )
    model = await api("POST", "/v1/models", 201, json={"name": f"model-{uuid4().hex[:6]}"})
    body = {"version": "1", "detection_type": "detection", "labelmap_id": labelmap["id"]} | extra
    return await api("POST", f"/v1/models/{model['id']}/versions", 201, json=body)


async def _world(api: Api) -> dict[str, Any]:
    """A monitoring-only deployment, a dataset version and an experiment of the key's project."""
    version = await _model_version(api)
    dataset = await api("POST", "/v1/datasets", 201, json={"name": f"ds-{uuid4().hex[:6]}"})
    dataset_version = await api(
        "POST",
        f"/v1/datasets/{dataset['id']}/versions",
        201,
        json={"version": "1", "detection_type": "detection", "labelmap_id": version["labelmap_id"]},
    )
    experiment = await api("POST", "/v1/experiments", 201, json={"name": f"exp-{uuid4().hex[:6]}"})
    deployment = await api(
        "POST",
        "/v1/deployments",
        201,
        json={"name": f"dep-{uuid4().hex[:6]}", "kind": "monitoring_only", "model_version_id": version["id"]},
    )
    return {
        "model": version["model_id"],
        "dataset_version": dataset_version["id"],
        "experiment": experiment["id"],
        "deployment": deployment["id"],
    }


def _never_uploaded(key: str) -> str:
    """A key of the same kind and extension naming bytes nobody uploaded."""
    digest = uuid4().hex * 2
    return f"{key.split('/')[0]}/{digest[:2]}/{digest}" + ("." + key.rsplit(".", 1)[1] if "." in key else "")


def _same_answer(
    foreign: httpx.Response, missing: httpx.Response, foreign_key: str, missing_key: str
) -> None:
    """The same status and the same body, once each key is put back where the other one's answer has it."""
    assert foreign.status_code == missing.status_code, (foreign.text, missing.text)
    assert foreign.text.replace(foreign_key, "KEY") == missing.text.replace(missing_key, "KEY")


async def test_another_projects_object_keys_answer_like_keys_nobody_uploaded(
    running: Running, ingest: httpx.AsyncClient
) -> None:
    owner, attacker = await new_project(running.pool), await new_project(running.pool)
    theirs, mine = running.as_key(owner.write), running.as_key(attacker.write)
    image = await _upload(theirs, "images", png(7001))
    weights = await _upload(theirs, "models", b"\x08\x07their weights " + uuid4().bytes)
    world = await _world(mine)

    async def refer(key: str, place: str) -> httpx.Response:
        if place == "dataset asset":
            return await mine.raw(
                "POST", f"/v1/dataset-versions/{world['dataset_version']}/assets", json={"object_key": key}
            )
        if place == "model-version file":
            return await mine.raw(
                "POST",
                f"/v1/models/{world['model']}/versions",
                json={
                    "version": uuid4().hex[:8],
                    "detection_type": "detection",
                    "files": {"model.onnx": key},
                },
            )
        if place == "experiment artifact":
            return await mine.raw(
                "POST",
                f"/v1/experiments/{world['experiment']}/artifacts",
                json={"name": "w.onnx", "object_key": key},
            )
        return await ingest.post(
            f"/v1/deployments/{world['deployment']}/predictions",
            json={"image_object_key": key, **MONITORED},
            headers={"Authorization": f"Bearer {attacker.write}"},
        )

    places = {
        "dataset asset": image["object_key"],
        "model-version file": weights["object_key"],
        "experiment artifact": weights["object_key"],
        "monitored prediction": image["object_key"],
    }
    for place, foreign_key in places.items():
        missing_key = _never_uploaded(foreign_key)
        foreign, missing = await refer(foreign_key, place), await refer(missing_key, place)
        assert foreign.status_code == 422, (place, foreign.text)
        _same_answer(foreign, missing, foreign_key, missing_key)
    batch = await ingest.post(
        f"/v1/deployments/{world['deployment']}/predictions:batch",
        json={"items": [{"image_object_key": image["object_key"], **MONITORED}]},
        headers={"Authorization": f"Bearer {attacker.write}"},
    )
    assert batch.status_code == 200 and batch.json()["results"][0]["status"] == 422, batch.text

    # The same bytes uploaded by the attacker are theirs too: stored once, recorded for both.
    again = await _upload(mine, "images", png(7001))
    assert again["object_key"] == image["object_key"]
    asset = await mine(
        "POST",
        f"/v1/dataset-versions/{world['dataset_version']}/assets",
        201,
        json={"object_key": again["object_key"]},
    )
    assert asset["sha256"] == image["sha256"]


async def test_a_raw_message_naming_another_projects_image_is_dead_lettered_like_a_missing_one(
    running: Running, ingest_settings: Settings
) -> None:
    owner, attacker = await new_project(running.pool), await new_project(running.pool)
    image = await _upload(running.as_key(owner.write), "images", png(7003))
    world = await _world(running.as_key(attacker.write))
    foreign_key = image["object_key"]
    missing_key = _never_uploaded(foreign_key)
    async with EventProducer.from_settings(ingest_settings) as producer:
        for key in (foreign_key, missing_key):
            message = RawPrediction.model_validate(
                {"deployment_id": world["deployment"], "image_object_key": key, **MONITORED}
            )
            await producer.publish(Topic.PREDICTIONS_RAW, message)
    letters = await published(
        ingest_settings,
        [Topic.DEADLETTER],
        lambda letter: (
            letter.source_topic == Topic.PREDICTIONS_RAW
            and (foreign_key in letter.error or missing_key in letter.error)
        ),
        2,
    )
    errors = {
        key: letter.error for letter in letters for key in (foreign_key, missing_key) if key in letter.error
    }
    assert errors[foreign_key].startswith("image_object_key: ")
    assert errors[foreign_key].replace(foreign_key, "KEY") == errors[missing_key].replace(missing_key, "KEY")


async def test_what_the_platform_writes_for_a_project_is_that_projects(
    running: Running, ingest_settings: Settings
) -> None:
    """A served image (recorded with its prediction, as ingest's persistence does for serving's events)
    and a job's output (recorded as an experiment artifact, as the runner does) are the project's objects
    and no other's."""
    owner, other = await new_project(running.pool), await new_project(running.pool)
    theirs, mine = running.as_key(owner.write), running.as_key(other.write)
    their_world, my_world = await _world(theirs), await _world(mine)
    store = ObjectStore.from_settings(ingest_settings)
    served = await asyncio.to_thread(store.put_bytes, ObjectKind.IMAGES, png(7004), "image/png")
    output = await asyncio.to_thread(
        store.put_bytes, ObjectKind.ARTIFACTS, uuid4().bytes, "application/octet-stream"
    )
    event = samples.prediction_logged(UUID(their_world["deployment"])).model_copy(
        update={
            "source": PredictionSource.SERVING,
            "champion": RoleResult(prediction=samples.detection(), latency_ms=5.0),
            "shadow": None,
            "image": samples.image().model_copy(update={"object_key": served.key, "sha256": served.sha256}),
        }
    )
    await predicted_assets.insert_prediction(running.pool, owner.id, event)
    await experiments.add_artifact(
        running.pool,
        owner.id,
        UUID(their_world["experiment"]),
        name="model.onnx",
        object_key=output.key,
        sha256=output.sha256,
        size_bytes=output.size,
    )

    for api, world, status in ((theirs, their_world, 201), (mine, my_world, 422)):
        asset = await api.raw(
            "POST", f"/v1/dataset-versions/{world['dataset_version']}/assets", json={"object_key": served.key}
        )
        assert asset.status_code == status, asset.text
        artifact = await api.raw(
            "POST",
            f"/v1/experiments/{world['experiment']}/artifacts",
            json={"name": "copy.onnx", "object_key": output.key},
        )
        assert artifact.status_code == status, artifact.text


async def test_no_presigned_url_of_another_projects_image(
    running: Running, ingest: httpx.AsyncClient
) -> None:
    owner, attacker = await new_project(running.pool), await new_project(running.pool)
    theirs, mine = running.as_key(owner.write), running.as_key(attacker.write)
    their_world, my_world = await _world(theirs), await _world(mine)
    image = await _upload(theirs, "images", png(7002))
    logged = await ingest.post(
        f"/v1/deployments/{their_world['deployment']}/predictions",
        json={"image_object_key": image["object_key"], **MONITORED},
        headers={"Authorization": f"Bearer {owner.write}"},
    )
    assert logged.status_code == 201, logged.text
    their_prediction = await theirs("GET", f"/v1/predictions/{logged.json()['prediction_id']}", 200)
    async with httpx.AsyncClient() as s3:  # the owner's URL serves the owner's bytes
        assert (await s3.get(their_prediction["image_url"])).content == png(7002)

    refused = await ingest.post(
        f"/v1/deployments/{my_world['deployment']}/predictions",
        json={"image_object_key": image["object_key"], **MONITORED},
        headers={"Authorization": f"Bearer {attacker.write}"},
    )
    assert refused.status_code == 422
    # A row naming their image in my project, written around every check (as a bug would): its answer
    # still carries no URL of their bytes.
    mine_prediction = uuid4()
    await running.pool.execute(
        """INSERT INTO predicted_assets (prediction_id, project_id, deployment_id, image_object_key,
               image_sha256, width, height, source, champion_prediction, champion_latency_ms, predicted_at)
           VALUES ($1, $2, $3, $4, $5, 64, 48, 'monitor_api', $6, 5.0, now())""",
        mine_prediction,
        attacker.id,
        UUID(my_world["deployment"]),
        image["object_key"],
        image["sha256"],
        {"type": "detection", "boxes": [], "classes": [], "scores": []},
    )
    assert (await mine("GET", f"/v1/predictions/{mine_prediction}", 200))["image_url"] is None
    listed = await mine("GET", f"/v1/deployments/{my_world['deployment']}/predictions", 200)
    assert [p["image_url"] for p in listed["items"]] == [None]
    assert (await theirs.raw("GET", f"/v1/predictions/{mine_prediction}")).status_code == 404


@pytest.mark.parametrize("name", ["../../../../x", "/etc/x", "a/../../x", "..\\..\\x", "a\x00b", "a//b"])
async def test_names_that_are_paths_are_refused_at_registration(running: Running, name: str) -> None:
    project: Project = await new_project(running.pool)
    api = running.as_key(project.write)
    weights = await _upload(api, "models", b"weights " + uuid4().bytes)
    world = await _world(api)
    answer = await api.raw(
        "POST",
        f"/v1/models/{world['model']}/versions",
        json={"version": "2", "detection_type": "detection", "files": {name: weights["object_key"]}},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"].startswith("body.files")
    answer = await api.raw(
        "POST",
        f"/v1/experiments/{world['experiment']}/artifacts",
        json={"name": name, "object_key": weights["object_key"]},
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body.name", answer.text
    answer = await api.raw(
        "POST", "/v1/experiments", json={"name": "e", "dataset_versions": {name: str(uuid4())}}
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"].startswith(
        "body.dataset_versions"
    )
    # A plain relative name in a folder is a name like any other.
    nested = await api(
        "POST",
        f"/v1/experiments/{world['experiment']}/artifacts",
        201,
        json={"name": "checkpoints/last.onnx", "object_key": weights["object_key"]},
    )
    assert nested["name"] == "checkpoints/last.onnx"
