"""A whole session through the SDK, as a user drives it, against the real services: the control plane
(`python -m services.api`) and the monitor endpoint (`python -m services.ingest`, whose persistence
consumer writes what it logs to Postgres), on the real Postgres, broker and S3.

Create a model and its versions, deploy it monitoring-only with a shadow, monitor predictions of both,
review them, submit them to the feedback loop, and read the dataset version back."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import numpy as np
import pytest

from cvloop.sdk import (
    Client,
    Conflict,
    DeploymentPolicy,
    Forbidden,
    NotFound,
    PredictedAsset,
    Unauthorized,
    Unprocessable,
)
from cvloop.stack.service import Api, Ingest
from cvloop.stack.settings import sdk_settings
from schemas.model_io import ModelIO
from schemas.predictions import ClassificationPrediction
from services.common.domain.onnx_graphs import dense_classifier
from services.common.settings import Settings
from tests.sdk_support import eventually, invoke, needs, new_project, png, running

pytestmark = needs("services/api/__main__.py", "services/ingest/__main__.py")
LABELS = ["cat", "dog", "bird"]


def classes(*scores: float) -> ClassificationPrediction:
    return ClassificationPrediction(classes=LABELS, scores=list(scores))


@pytest.fixture(scope="module")
def platform(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings
) -> Iterator[Settings]:
    with running(Api(postgres_settings), Ingest(postgres_settings)):
        yield postgres_settings


@pytest.fixture(scope="module")
def admin_key(platform: Settings) -> str:
    return new_project(platform, f"session-{uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def client(platform: Settings, admin_key: str) -> Iterator[Client]:
    with Client(admin_key, settings=sdk_settings(platform)) as client:
        yield client


def classifier(seed: int) -> bytes:
    """A linear classifier of 32x32 RGB images into LABELS, as ONNX (its io is ModelIO(32, 32))."""
    rng = np.random.default_rng(seed)
    return dense_classifier(
        [(rng.normal(size=(3 * 32 * 32, len(LABELS))), np.zeros(len(LABELS)))], (3, 32, 32)
    )


def test_a_monitoring_session_from_model_to_dataset_version(client: Client) -> None:
    # The registry: a labelmap, a model with two versions (the files uploaded on the way).
    labelmap = client.create_labelmap("animals", LABELS)
    model = client.create_model("animal-classifier", "three animals")
    io = ModelIO(width=32, height=32)
    champion = model.create_version(
        "v1",
        "classification",
        labelmap=labelmap,
        files={"model.onnx": classifier(seed=1)},
        io=io,
        training_parameters={"epochs": 10, "lr": 0.01},
    )
    shadow = model.create_version(
        "v2", "classification", labelmap=labelmap, files={"model.onnx": classifier(seed=2)}, io=io
    )
    assert set(champion.files) == {"model.onnx"} and champion.files != shadow.files
    assert [v.version for v in client.get_model("animal-classifier").list_versions()] == ["v1", "v2"]

    # A monitoring-only deployment, the second version as its shadow, a feedback loop.
    client.create_deployment("shelter-cam", champion, kind="monitoring_only")
    deployment = client.get_deployment("shelter-cam")
    deployment.set_shadow_model(shadow)
    assert (deployment.champion_model_version_id, deployment.shadow_model_version_id) == (
        champion.id,
        shadow.id,
    )

    dataset = client.create_dataset("shelter-feedback")
    feedback = dataset.create_version("v1", "classification", labelmap=labelmap)
    deployment.attach_dataset_version_to_feedback_loop(feedback)
    assert deployment.list_feedback_loop_dataset_versions() == [feedback]

    ct = deployment.setup_continuous_training(
        dataset_versions={"train": feedback},
        training_parameters={"epochs": 5},
        threshold=2,
        policy={"drift": {"reports": 3, "min_features": 2}, "cooldown_s": 600},
    )
    assert ct["active"] and ct["threshold"] == 2 and ct["training_parameters"] == {"epochs": 5}
    assert ct["policy"]["drift"] == {"reports": 3, "min_features": 2} and ct["policy"]["cooldown_s"] == 600
    assert not deployment.toggle_continuous_training(False)["active"]
    cd = deployment.setup_continuous_deployment(DeploymentPolicy.DEPLOY_SHADOW)
    assert cd == {"policy": "deploy_shadow", "active": True}

    # Predictions made elsewhere, champion and shadow, logged through the monitor endpoint.
    images = [png(seed) for seed in range(3)]
    logged = [
        deployment.monitor(
            image,
            latency=10.0 + i,
            prediction=classes(0.7, 0.2, 0.1),
            shadow_prediction=classes(0.1, 0.8, 0.1),
            shadow_latency=8.0 + i,
            source="shelter-cam-1",
            tags=["night"] if i == 0 else ["day"],
            metadata={"frame": i},
        )
        for i, image in enumerate(images)
    ]
    with pytest.raises(Conflict) as again:
        deployment.monitor(images[0], latency=1.0, prediction=classes(0.7, 0.2, 0.1))
    assert again.value.body["prediction_id"] == str(logged[0])
    with pytest.raises(Unprocessable) as no_latency:
        deployment.monitor(
            png(99), latency=1.0, prediction=classes(1, 0, 0), shadow_prediction=classes(1, 0, 0)
        )
    assert any("shadow" in field and "latency_ms" in field for field in no_latency.value.fields)

    # They reach Postgres through ingest's persistence consumer.
    def to_review() -> list[PredictedAsset]:
        assets = deployment.list_predicted_assets("TO_REVIEW", order="oldest")
        return assets if len(assets) == len(logged) else []

    assets = eventually(to_review)
    assert {a.id for a in assets} == set(logged)
    first = deployment.get_predicted_asset(logged[0])
    assert first.champion_prediction == classes(0.7, 0.2, 0.1)
    assert first.shadow_prediction == classes(0.1, 0.8, 0.1)
    assert (first["champion_latency_ms"], first["shadow_latency_ms"]) == (10.0, 8.0)
    assert first["shadow_model_version_id"] == str(shadow.id)
    # `source` says which entrance logged it; the producer's own name is kept in the metadata.
    assert first["metadata"] == {"frame": 0, "source": "shelter-cam-1"}
    assert first["image_url"]
    assert [a.id for a in deployment.list_predicted_assets(tags=["night"])] == [logged[0]]
    assert len(deployment.list_predicted_assets(limit=2)) == 2

    # Review two of them (the shadow was right about the first), submit every reviewed one.
    reviewed = first.add_review(classes(0.0, 1.0, 0.0))
    assert reviewed.status == "REVIEWED" and reviewed.review == classes(0.0, 1.0, 0.0)
    deployment.add_review(logged[1], classes(1.0, 0.0, 0.0))
    with pytest.raises(Unprocessable):  # not a prediction of the deployment's type
        deployment.add_review(logged[2], {"type": "detection", "classes": [], "scores": [], "boxes": []})

    submitted = deployment.submit_to_feedback_loop(feedback)
    assert sorted(s.prediction_id for s in submitted) == sorted(logged[:2])
    assert {a.id: a.status for a in deployment.list_predicted_assets()} == {
        logged[0]: "SUBMITTED",
        logged[1]: "SUBMITTED",
        logged[2]: "TO_REVIEW",
    }
    with pytest.raises(Conflict):  # SUBMITTED is final
        first.add_review(classes(1.0, 0.0, 0.0))

    # The dataset version holds the two images, each with its review as the annotation.
    dataset_version = client.get_dataset(dataset.name).get_version("v1")
    assets_back = {a.id: a for a in dataset_version.list_assets()}
    by_prediction = {s.prediction_id: s.asset_id for s in submitted}
    assert set(assets_back) == set(by_prediction.values())
    first_back = assets_back[by_prediction[logged[0]]]
    assert first_back.object_key == first["image_object_key"]
    [annotation] = first_back.annotations
    assert ClassificationPrediction.model_validate(annotation["shapes"]) == classes(0.0, 1.0, 0.0)

    # The shadow did better: promote it.
    deployment.promote_shadow()
    assert (deployment.champion_model_version_id, deployment.shadow_model_version_id) == (shadow.id, None)


def test_an_experiment_exported_as_a_model_inherits_its_base(client: Client) -> None:
    labelmap = client.create_labelmap("digits", [str(d) for d in range(10)])
    base = client.create_model("digits").create_version(
        "v1",
        "classification",
        labelmap=labelmap,
        training_entrypoint="train.py",
    )
    experiment = client.create_experiment("digits-retrain", base, parameters={"epochs": 3})
    experiment.store("model.onnx", b"retrained weights")
    [artifact] = experiment.artifacts
    assert artifact.name == "model.onnx" and artifact.size_bytes == len(b"retrained weights")

    exported = experiment.export_as_model("digits-retrained", version="1")
    assert exported["labelmap_id"] == str(labelmap.id)
    assert exported["training_entrypoint"] == "train.py" and exported["training_parameters"] == {"epochs": 3}
    assert exported["source_experiment_id"] == str(experiment.id)
    assert exported.files == {a.name: a.object_key for a in experiment.artifacts}
    assert exported.get_model().name == "digits-retrained"

    again = experiment.export_as_model(model=exported.get_model(), version="2")
    assert again["model_id"] == exported["model_id"]

    processing = client.create_processing("evaluate", command=["python", "evaluate.py"])
    job = exported.launch_processing(processing, {})
    assert job.kind == "processing" and job.status == "pending"
    assert client.get_job(job.id).id in {j.id for j in client.list_jobs("processing")}


def test_keys_and_projects_are_walls(platform: Settings, client: Client) -> None:
    other = Client(new_project(platform, f"other-{uuid4().hex[:8]}"), settings=sdk_settings(platform))
    mine = client.create_model(f"private-{uuid4().hex[:6]}")
    with other, pytest.raises(NotFound):
        other.get_model_by_id(mine.id)
    with (
        Client("cvl_wrong", settings=sdk_settings(platform)) as stranger,
        pytest.raises(Unauthorized) as caught,
    ):
        stranger.list_models()
    assert caught.value.detail


def test_the_review_queue_from_the_command_line(platform: Settings, admin_key: str, client: Client) -> None:
    """`cvloop deployments predictions` and `submit` over what the SDK logged and reviewed."""
    labelmap = client.create_labelmap("fruit", ["apple", "pear"])
    version = client.create_model("fruit").create_version("v1", "classification", labelmap=labelmap)
    deployment = client.create_deployment("fruit-belt", version)
    target = client.create_dataset("fruit-feedback").create_version("v1", "classification", labelmap=labelmap)
    deployment.attach_dataset_version_to_feedback_loop(target)
    apple = ClassificationPrediction(classes=["apple", "pear"], scores=[0.6, 0.4])
    logged = [deployment.monitor(png(100 + i), latency=3.0, prediction=apple) for i in range(3)]
    eventually(lambda: len(deployment.list_predicted_assets()) == len(logged))
    for prediction_id in logged[:2]:
        deployment.add_review(prediction_id, apple)

    def cvloop(*args: str) -> str:
        code, out, err = invoke(platform, *args, api_key=admin_key)
        assert code == 0, out + err
        return out

    listed = cvloop("deployments", "predictions", "fruit-belt", "--status", "REVIEWED", "--order", "oldest")
    assert {line.split()[0] for line in listed.splitlines()} == {str(p) for p in logged[:2]}
    submitted = cvloop("deployments", "submit", "fruit-belt", "--dataset-version", str(target.id),
                       "--prediction", str(logged[0]))  # fmt: skip
    assert submitted.startswith(f"{logged[0]} -> asset ")
    assert len(target.list_assets()) == 1
    assert deployment.get_predicted_asset(logged[1]).status == "REVIEWED"  # only the one named
    code, _, err = invoke(platform, "deployments", "submit", "fruit-belt", "--dataset-version", str(uuid4()),
                          api_key=admin_key)  # fmt: skip
    assert code == 1 and "404" in err and "body.dataset_version_id" in err


def test_training_data_batches_and_deployment_settings(client: Client) -> None:
    labelmap = client.create_labelmap("birds", ["crow", "gull"])
    model = client.create_model("birds")
    first = model.create_version("v1", "classification", labelmap=labelmap)
    second = model.create_version("v2", "classification", labelmap=labelmap)
    deployment = client.create_deployment("pier", first)

    # Training data: a dataset version with annotated images; its reference is computed by a job.
    training = client.create_dataset("birds-train").create_version("v1", "classification", labelmap=labelmap)
    crow = ClassificationPrediction(classes=["crow", "gull"], scores=[1.0, 0.0])
    added = [training.add_asset(png(200 + i), annotation=crow) for i in range(2)]
    assert {a.id for a in training.list_assets()} == {a.id for a in added}
    assert all(len(a.annotations) == 1 for a in training.list_assets())
    state = deployment.set_training_data(training)
    assert state.dataset_version_id == training.id and state.status == "computing"
    job = deployment.training_data_job()
    assert job is not None and job.id == state.job_id and job.kind == "reference"
    assert deployment.get_training_data() == state

    # Many predictions in one call, each answered on its own.
    gull = ClassificationPrediction(classes=["crow", "gull"], scores=[0.3, 0.7])
    results = deployment.monitor_batch(
        [
            {"image": png(300), "latency": 4.0, "prediction": gull},
            {"image": png(301), "latency": 4.0, "prediction": gull, "tags": ["batch"]},
            {"image": png(300), "latency": 4.0, "prediction": gull},
        ]
    )
    assert [r.status for r in results] == [201, 201, 409]
    assert results[2].prediction_id == results[0].prediction_id
    eventually(lambda: len(deployment.list_predicted_assets()) == 2)

    # Champion, shadow and threshold changes.
    deployment.set_shadow_model(second)
    deployment.remove_shadow_model()
    assert deployment.shadow_model_version_id is None
    deployment.set_champion_model(second)
    # A classification answers every class: a confidence threshold is refused.
    with pytest.raises(Unprocessable, match=r"body\.confidence_threshold"):
        deployment.update_confidence_threshold(0.5)
    again = client.get_deployment_by_id(deployment.id)
    assert again.champion_model_version_id == second.id and again["confidence_threshold"] == 0.0


def test_scopes_of_keys_made_through_the_sdk(platform: Settings, client: Client) -> None:
    made = client.create_api_key("viewer", ["read"])
    assert made["scopes"] == ["read"] and made["secret"]
    with Client(made["secret"], settings=sdk_settings(platform)) as viewer:
        assert viewer.get_project()["id"] == client.get_project()["id"]
        with pytest.raises(Forbidden):
            viewer.create_model("not-allowed")
        with pytest.raises(Forbidden):
            viewer.list_api_keys()
    assert "viewer" in {key["name"] for key in client.list_api_keys()}
    assert client.set_api_key_scopes(made["id"], ["read", "write"])["scopes"] == ["read", "write"]
    with Client(made["secret"], settings=sdk_settings(platform)) as writer:
        assert writer.create_model(f"allowed-{made['id'][:8]}").name.startswith("allowed-")
    client.revoke_api_key(made["id"])
    with Client(made["secret"], settings=sdk_settings(platform)) as revoked, pytest.raises(Unauthorized):
        revoked.get_project()
