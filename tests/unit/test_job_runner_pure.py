"""The job runner's pure parts: what a job runs, how a run ended in words, what a finished run becomes."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from schemas.events import NO_DEPLOYMENT, JobKind, TrainingStatus
from schemas.model_version import VERSION_LIMIT
from schemas.predictions import DetectionType
from schemas.vocabulary import RunStatus, TargetType
from services.common.domain.jobs import Job, JobRun, OutputFile, Processing
from services.common.domain.registry import ModelVersion
from services.pipeline.runner.backends import process_exit
from services.pipeline.runner.commands import (
    REFERENCE_JOB,
    REFERENCE_TRAINER,
    JobRefused,
    image_name,
    job_command,
    local_command,
    timeout_of,
)
from services.pipeline.runner.finish import (
    processed_version,
    processed_version_name,
    request_deployment,
    training_finished,
)
from services.pipeline.runner.workspace.stage_in import command_parameters, job_file
from services.pipeline.runner.workspace.stage_out import metrics_summary, output_names
from services.pipeline.settings import PipelineSettings

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def _job(kind: JobKind = JobKind.TRAINING, **changes: Any) -> Job:
    values: dict[str, Any] = {
        "id": uuid4(),
        "project_id": uuid4(),
        "kind": kind,
        "target_type": TargetType.EXPERIMENT,
        "target_id": uuid4(),
        "processing_id": None,
        "parameters": {},
        "request_id": None,
        "created_at": NOW,
    }
    return Job.model_validate(values | changes)


def _run(job: Job, status: RunStatus = RunStatus.RUNNING, **changes: Any) -> JobRun:
    values: dict[str, Any] = {
        "id": uuid4(),
        "project_id": job.project_id,
        "job_id": job.id,
        "attempt": 1,
        "status": status,
        "reason": None,
        "created_at": NOW,
        "started_at": NOW,
        "finished_at": None,
    }
    return JobRun.model_validate(values | changes)


def _version(**changes: Any) -> ModelVersion:
    values: dict[str, Any] = {
        "id": uuid4(),
        "project_id": uuid4(),
        "model_id": uuid4(),
        "created_at": NOW,
        "version": "v3",
        "detection_type": DetectionType.CLASSIFICATION,
        "labelmap_id": uuid4(),
        "training_parameters": {"epochs": 5},
        "training_entrypoint": None,
        "dataset_versions": {"train": uuid4()},
    }
    return ModelVersion.model_validate(values | changes)


def _processing(**changes: Any) -> Processing:
    values: dict[str, Any] = {
        "id": uuid4(),
        "project_id": uuid4(),
        "name": "to-fp16",
        "description": "",
        "target_type": "model_version",
        "command": ["python", "convert.py"],
        "image": None,
        "parameters_schema": {},
        "created_at": NOW,
    }
    return Processing.model_validate(values | changes)


def test_training_runs_the_base_versions_entrypoint_or_the_reference_trainer() -> None:
    custom = _version(training_entrypoint="python train.py --epochs '3 4'", training_image="me/trainer:1")
    assert job_command(JobKind.TRAINING, base=custom).command == ("python", "train.py", "--epochs", "3 4")
    assert job_command(JobKind.TRAINING, base=custom).image == "me/trainer:1"
    assert job_command(JobKind.TRAINING, base=_version()).command == REFERENCE_TRAINER
    assert job_command(JobKind.TRAINING, base=None).command == REFERENCE_TRAINER
    with pytest.raises(JobRefused, match="not a command line"):
        job_command(JobKind.TRAINING, base=_version(training_entrypoint="python 'unclosed"))


def test_no_job_gets_a_platform_setting_only_the_reference_job_its_own() -> None:
    reference = job_command(JobKind.REFERENCE)
    assert reference.command == REFERENCE_JOB
    assert set(reference.passed_env) == {"SCORING_REFERENCE_SAMPLE_SIZE", "CVLOOP_MAX_IMAGE_BYTES"}
    assert job_command(JobKind.TRAINING).passed_env == ()
    assert job_command(JobKind.PROCESSING, processing=_processing()).passed_env == ()


def test_an_image_only_processing_cannot_run_locally() -> None:
    image_only = job_command(JobKind.PROCESSING, processing=_processing(command=None, image="me/convert:2"))
    assert image_only.command is None and image_only.image == "me/convert:2"
    with pytest.raises(
        JobRefused, match=r"'to-fp16' runs as the image 'me/convert:2'.*JOBS_BACKEND=kubernetes"
    ):
        local_command(image_only, "to-fp16")
    assert local_command(job_command(JobKind.PROCESSING, processing=_processing()), "x") == (
        "python",
        "convert.py",
    )
    with pytest.raises(JobRefused, match="processing does not exist"):
        job_command(JobKind.PROCESSING, processing=None)


def test_the_local_backend_runs_a_python_command_of_a_mapped_image_with_its_stand_in_python() -> None:
    torch = Path("/tools/torch-env/bin/python")
    pythons = {"cvloop-trainer-torch": torch}
    for image in (
        "cvloop-trainer-torch:dev",
        "registry.example:5000/ml/cvloop-trainer-torch:0.1.0@sha256:ab",
    ):
        assert image_name(image) == "cvloop-trainer-torch"
        trained = job_command(
            JobKind.TRAINING,
            base=_version(training_entrypoint="python -m cvloop.trainers.detection", training_image=image),
        )
        assert local_command(trained, None, pythons) == (str(torch), "-m", "cvloop.trainers.detection")
    # Another image, no image, or a command that is not `python`: run as given.
    for image, entrypoint in (("me/trainer:1", "python t.py"), (None, "python t.py"), (None, "./t.sh")):
        other = job_command(
            JobKind.TRAINING, base=_version(training_entrypoint=entrypoint, training_image=image)
        )
        assert local_command(other, None, pythons) == other.command
    mapped_sh = _version(training_entrypoint="./t.sh", training_image="cvloop-trainer-torch:dev")
    assert local_command(job_command(JobKind.TRAINING, base=mapped_sh), None, pythons) == ("./t.sh",)


def test_the_torch_trainer_image_stands_for_the_torch_environment_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CVLOOP_TOOLS_DIR", str(tmp_path))
    monkeypatch.delenv("JOBS_LOCAL_PYTHONS", raising=False)
    torch = tmp_path.resolve() / "torch-env" / "bin" / "python"
    assert PipelineSettings().jobs_local_pythons == {"cvloop-trainer-torch": torch}
    monkeypatch.setenv("JOBS_LOCAL_PYTHONS", '{"my-trainer": "/opt/env/bin/python"}')
    assert PipelineSettings().jobs_local_pythons == {"my-trainer": Path("/opt/env/bin/python")}


@pytest.mark.parametrize("value", [0, -1, "60", True, float("nan")])
def test_a_bad_timeout_parameter_is_refused(value: object) -> None:
    with pytest.raises(JobRefused, match=r"parameters\.timeout_s must be a positive number"):
        timeout_of({"timeout_s": value}, 60.0)


def test_the_timeout_parameter_overrides_the_default() -> None:
    assert timeout_of({}, 60.0) == 60.0
    assert timeout_of({"timeout_s": 5}, 60.0) == 5.0


def test_how_a_command_ended_in_words() -> None:
    assert process_exit(0, timed_out=False, timeout_s=9, last_stderr="warning").succeeded
    assert process_exit(3, timed_out=False, timeout_s=9, last_stderr="ValueError: x").reason == (
        "exit code 3: ValueError: x"
    )
    assert process_exit(1, timed_out=False, timeout_s=9, last_stderr=None).reason == "exit code 1"
    killed = process_exit(-signal.SIGKILL, timed_out=False, timeout_s=9, last_stderr=None)
    assert killed.reason == "killed by signal SIGKILL"
    assert process_exit(-15, timed_out=True, timeout_s=2.5, last_stderr="x").reason == "timed out after 2.5 s"


def test_training_finished_reports_pipeline_requests_only() -> None:
    deployment = uuid4()
    job = _job(request_id=f"{deployment}:4")
    run = _run(job, RunStatus.FAILED, reason="exit code 2", finished_at=NOW)
    event = training_finished(job, run)
    assert event is not None
    assert (event.deployment_id, event.request_id, event.experiment_id) == (
        deployment,
        f"{deployment}:4",
        job.target_id,
    )
    assert (event.status, event.reason, event.job_run_id) == (TrainingStatus.FAILED, "exit code 2", run.id)
    assert training_finished(job, run).event_id == event.event_id  # a replayed finish is the same event
    assert training_finished(_job(), run) is None
    assert request_deployment("not-a-uuid:1") == NO_DEPLOYMENT == request_deployment(None)


def test_a_processed_version_is_named_after_its_source_and_processing() -> None:
    assert processed_version_name("v3", "to-fp16", 1) == "v3-to-fp16"
    assert processed_version_name("v3", "to-fp16", 2) == "v3-to-fp16-2"
    long = processed_version_name("v" * 60, "p" * 128, 12)
    assert len(long) == VERSION_LIMIT and long.endswith("-12") and "-pppp" in long


def test_a_processed_version_inherits_from_its_source() -> None:
    source = _version(training_entrypoint="python train.py")
    job = _job(JobKind.PROCESSING, target_type=TargetType.MODEL_VERSION, target_id=source.id)
    files = [OutputFile(name="model.onnx", object_key="models/ab/" + "a" * 64, sha256="a" * 64, size_bytes=3)]
    new = processed_version(source, "to-fp16", job, _run(job), files, "v3-to-fp16")
    kept = (
        "detection_type",
        "labelmap_id",
        "io",
        "training_parameters",
        "training_entrypoint",
        "dataset_versions",
    )
    assert {f: getattr(new, f) for f in kept} == {f: getattr(source, f) for f in kept}
    assert [f.name for f in new.files] == ["model.onnx"] and new.version == "v3-to-fp16"


def test_job_json_names_the_target_and_a_reference_jobs_dataset_version() -> None:
    dataset_version = uuid4()
    job = _job(
        JobKind.REFERENCE,
        target_type=TargetType.DEPLOYMENT,
        parameters={"dataset_version_id": str(dataset_version)},
    )
    described = job_file(job, _run(job), job.parameters)
    assert (described.deployment_id, described.dataset_version_id) == (job.target_id, dataset_version)
    assert described.experiment_id is None and described.kind is JobKind.REFERENCE
    training = _job()
    assert job_file(training, _run(training), {}).experiment_id == training.target_id


def test_outputs_are_every_file_below_the_folder(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    for name in ("model.onnx", "logs/train.txt", "labels.json"):
        (tmp_path / name).write_text("x")
    outside = tmp_path.parent / f"outside-{uuid4()}"
    outside.write_text("secret")
    (tmp_path / "link").symlink_to(outside)
    assert output_names(tmp_path) == ["labels.json", "logs/train.txt", "model.onnx"]


def test_metrics_json_is_an_object_of_numbers() -> None:
    assert metrics_summary('{"accuracy_after": 0.9, "epochs": 3}') == "metrics: accuracy_after=0.9, epochs=3"
    for bad in ('{"a": "high"}', "[1]", '{"a": true}', '{"a": NaN}'):
        with pytest.raises(ValueError):
            metrics_summary(bad)


def test_the_command_does_not_see_the_runners_parameters() -> None:
    given = {"learning_rate": 0.1, "timeout_s": 60, "resources": {"limits": {"nvidia.com/gpu": 1}}}
    assert command_parameters(given) == {"learning_rate": 0.1}
