"""The control plane's pure decisions: annotations, feedback-loop fit, processing parameters, export,
the events it builds, and which field a unique violation names."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from schemas.events import NO_DEPLOYMENT, DeploymentChange, DeploymentKind, JobKind
from schemas.model_io import ModelIO
from schemas.predictions import ClassificationPrediction, DetectionPrediction, DetectionType
from schemas.vocabulary import TargetType
from services.api.errors import unique_field
from services.api.rules import (
    annotation_problem,
    feedback_mismatch,
    missing_parameters,
    unknown_parameters,
)
from services.common.domain.experiments import Artifact, Experiment
from services.common.domain.job_events import job_requested
from services.common.domain.model_export import exported_version
from services.common.domain.registry import DatasetVersion, ModelVersion
from tests.samples import deployment_record, job_and_run

NOW = datetime(2026, 11, 21, tzinfo=UTC)
SHA = "a" * 64


def _box(label: str = "cat", box: tuple[float, ...] = (1, 1, 10, 10)) -> DetectionPrediction:
    return DetectionPrediction(boxes=[box], classes=[label], scores=[0.9])


def _model_version(**extra: object) -> ModelVersion:
    values = {
        "id": uuid4(),
        "project_id": uuid4(),
        "model_id": uuid4(),
        "created_at": NOW,
        "version": "1",
        "detection_type": DetectionType.DETECTION,
        "labelmap_id": uuid4(),
    }
    return ModelVersion.model_validate(values | extra)


def _dataset_version(detection_type: DetectionType = DetectionType.DETECTION) -> DatasetVersion:
    return DatasetVersion(
        id=uuid4(),
        project_id=uuid4(),
        dataset_id=uuid4(),
        version="v1",
        description="",
        detection_type=detection_type,
        labelmap_id=None,
        created_at=NOW,
    )


def test_annotation_must_fit_type_image_and_labelmap() -> None:
    detection = DetectionType.DETECTION
    assert annotation_problem(_box(), detection, 64, 48, ["cat"]) is None
    assert annotation_problem(_box(), detection, 64, 48, None) is None
    classification = ClassificationPrediction(classes=["cat"], scores=[1.0])
    assert annotation_problem(classification, detection, 64, 48, None)[0] == "type"  # type: ignore[index]
    assert annotation_problem(_box(box=(0, 0, 65, 4)), detection, 64, 48, None) == (
        "boxes[0]",
        "leaves the 64x48 image",
    )
    assert annotation_problem(_box("cow"), detection, 64, 48, ["cat"])[0] == "classes[0]"  # type: ignore[index]


def test_feedback_loop_takes_only_the_champions_type_and_labels() -> None:
    champion = _model_version()
    assert feedback_mismatch(champion, ["cat", "dog"], _dataset_version(), ["cat", "dog"]) is None
    assert "differs" in (
        feedback_mismatch(champion, ["cat", "dog"], _dataset_version(), ["dog", "cat"]) or ""
    )
    assert "none" in (feedback_mismatch(champion, ["cat"], _dataset_version(), None) or "")
    wrong_type = feedback_mismatch(champion, ["cat"], _dataset_version(DetectionType.SEGMENTATION), ["cat"])
    assert wrong_type is not None and "segmentation" in wrong_type


def test_processing_parameters_follow_the_schema() -> None:
    schema = {"properties": {"bits": {}, "mode": {}}, "required": ["bits"]}
    assert unknown_parameters(schema, {"bits": 8, "speed": 1, "x": 0}) == ["speed", "x"]
    assert missing_parameters(schema, {"mode": "fast"}) == ["bits"]
    assert unknown_parameters({}, {"anything": 1}) == missing_parameters({}, {}) == []


def test_export_inherits_from_the_experiment_and_its_base_version() -> None:
    io = ModelIO(width=32, height=32)
    base = _model_version(
        training_parameters={"epochs": 3, "lr": 0.1},
        training_entrypoint="train.py",
        training_image="t:1",
        io=io,
    )
    train = uuid4()
    experiment = Experiment(
        id=uuid4(),
        project_id=base.project_id,
        name="e",
        base_model_version_id=base.id,
        parameters={"epochs": 10},
        status="succeeded",
        training_request_id=None,
        dataset_versions={"train": train},
        artifacts=[
            Artifact(id=uuid4(), name="best.onnx", object_key=f"artifacts/aa/{SHA}", sha256=SHA, size_bytes=4)
        ],
        created_at=NOW,
        finished_at=NOW,
    )
    new = exported_version(experiment, base, version="2", description="d", io=None)
    assert (new.detection_type, new.labelmap_id, new.io) == (base.detection_type, base.labelmap_id, io)
    assert new.training_parameters == {"epochs": 10, "lr": 0.1}
    assert (new.training_entrypoint, new.training_image) == ("train.py", "t:1")
    assert (new.source_experiment_id, new.dataset_versions) == (experiment.id, {"train": train})
    assert [(f.name, f.object_key, f.size_bytes) for f in new.files] == [
        ("best.onnx", f"artifacts/aa/{SHA}", 4)
    ]
    other_io = ModelIO(width=64, height=64)
    assert exported_version(experiment, base, version="3", description="", io=other_io).io == other_io


def test_job_requests_name_their_target() -> None:
    dataset_version = uuid4()
    job, run = job_and_run(
        JobKind.REFERENCE, TargetType.DEPLOYMENT, {"dataset_version_id": str(dataset_version)}
    )
    event = job_requested(job, run)
    assert (event.deployment_id, event.dataset_version_id, event.parameters) == (
        job.target_id,
        dataset_version,
        {},
    )
    assert (event.job_id, event.run_id, event.kind) == (job.id, run.id, JobKind.REFERENCE)

    job, run = job_and_run(JobKind.PROCESSING, TargetType.MODEL_VERSION, {"bits": 8})
    event = job_requested(job, run)
    assert (event.deployment_id, event.model_version_id, event.parameters) == (
        NO_DEPLOYMENT,
        job.target_id,
        {"bits": 8},
    )


def test_deployment_updated_carries_the_routing_state() -> None:
    deployment = deployment_record(DeploymentKind.SERVED, DetectionType.DETECTION, threshold=0.4)
    event = deployment.updated_event(DeploymentChange.SHADOW_SET)
    assert (event.deployment_id, event.change, event.confidence_threshold) == (
        deployment.id,
        "shadow_set",
        0.4,
    )
    assert (event.champion_model_version_id, event.shadow_model_version_id) == (
        deployment.champion_model_version_id,
        deployment.shadow_model_version_id,
    )


def test_unique_violations_name_the_body_field() -> None:
    assert unique_field("datasets_project_id_name_key") == "body.name"
    assert unique_field("model_versions_model_id_version_key") == "body.version"
    assert unique_field("something_else") == unique_field(None) == ""
