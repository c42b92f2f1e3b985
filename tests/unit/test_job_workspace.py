"""The job workspace contract (schemas.job_workspace): its generated JSON Schema files, its readers'
tolerance, its layout, and docs/job-runner.md's description of that layout."""

from __future__ import annotations

import json
import re
from pathlib import Path
from uuid import uuid4

import jsonschema
import pytest

from schemas import jsonschema as generated
from schemas.events import JobKind
from schemas.job_workspace import (
    ASSETS_FILE,
    BASE_MODEL_DIR,
    DATASETS_DIR,
    FILE_MODELS,
    IMAGES_DIR,
    JOB_FILE,
    MODEL_VERSION_FILE,
    OUTPUTS_DIR,
    PARAMETERS_FILE,
    AssetLine,
    JobFile,
    JobWorkspace,
    ModelVersionFile,
    ReferenceSummary,
    image_file,
)
from schemas.model_io import ModelIO
from schemas.model_version import CHECKPOINT_FILE, IO_FILE, LABELS_FILE, METRICS_FILE
from schemas.predictions import ClassificationPrediction, DetectionType

JOB_RUNNER_DOC = Path(__file__).resolve().parents[2] / "docs" / "job-runner.md"
ASSET_ID = uuid4()


def _schema(name: str) -> dict:
    return json.loads((generated.JSON_DIR / f"{name}.schema.json").read_text())


WRITTEN = [
    (
        "job-workspace.job",
        JobFile(job_id=uuid4(), run_id=uuid4(), attempt=2, kind=JobKind.TRAINING, parameters={"lr": 0.1}),
    ),
    (
        "job-workspace.model-version",
        ModelVersionFile(
            id=uuid4(),
            version="v1",
            detection_type=DetectionType.CLASSIFICATION,
            labels=["cat", "dog"],
            io=ModelIO(width=32, height=32),
            training_parameters={"epochs": 3},
        ),
    ),
    (
        "job-workspace.model-version",
        ModelVersionFile(id=uuid4(), version="v2", detection_type=DetectionType.DETECTION),
    ),
    (
        "job-workspace.asset-line",
        AssetLine(
            asset_id=ASSET_ID,
            file=image_file(ASSET_ID, "png"),
            annotation=ClassificationPrediction(classes=["cat"], scores=[1.0]),
        ),
    ),
    ("job-workspace.asset-line", AssetLine(asset_id=ASSET_ID, file=image_file(ASSET_ID, ""))),
    (
        "job-workspace.reference-summary",
        ReferenceSummary(
            detector="mahalanobis-ledoit-wolf", feature_names=["brightness"], training_size=9, sample_size=4
        ),
    ),
]


def test_every_workspace_file_has_a_json_schema_file() -> None:
    assert set(FILE_MODELS) == {name for name, _ in WRITTEN}
    for name in FILE_MODELS:
        assert (generated.JSON_DIR / f"{name}.schema.json").is_file(), "run `python -m schemas.jsonschema`"


@pytest.mark.parametrize(("name", "written"), WRITTEN, ids=[f"{n}-{i}" for i, (n, _) in enumerate(WRITTEN)])
def test_the_json_schema_accepts_what_the_runner_writes(name: str, written: JobFile) -> None:
    document = json.loads(written.model_dump_json())
    jsonschema.validate(document, _schema(name))
    assert type(written).model_validate(document) == written


def test_the_json_schema_says_every_field_is_written() -> None:
    line = json.loads(AssetLine(asset_id=ASSET_ID, file="images/a.png").model_dump_json())
    del line["annotation"]
    with pytest.raises(jsonschema.ValidationError, match="'annotation' is a required property"):
        jsonschema.validate(line, _schema("job-workspace.asset-line"))


def test_readers_ignore_unknown_fields_and_default_the_optional_ones() -> None:
    version = ModelVersionFile.model_validate_json(
        json.dumps({"id": str(ASSET_ID), "version": "1", "detection_type": "classification", "later": 1})
    )
    assert (version.labels, version.io, version.training_parameters) == (None, None, {})
    assert not hasattr(version, "later")


def test_the_layout_of_a_workspace() -> None:
    workspace = JobWorkspace(Path("/w"))
    assert workspace.job_file == Path("/w/job.json")
    assert workspace.parameters_file == Path("/w/parameters.json")
    assert workspace.model_version_file == Path("/w/base_model/model_version.json")
    assert workspace.base_model_onnx == Path("/w/base_model/model.onnx")
    assert workspace.assets_file("test") == Path("/w/datasets/test/assets.jsonl")
    assert workspace.images("test") == Path("/w/datasets/test/images")
    assert workspace.labels_file("test") == Path("/w/datasets/test/labels.json")
    assert workspace.metrics_file == Path("/w/outputs/metrics.json")
    assert workspace.relative(workspace.assets_file("a")) == "datasets/a/assets.jsonl"
    assert image_file(ASSET_ID, "jpg") == f"images/{ASSET_ID}.jpg"
    run_id, job_id = uuid4(), uuid4()
    assert workspace.job_env(job_id, run_id, JobKind.PROCESSING) == {
        "CVLOOP_JOB_DIR": "/w",
        "CVLOOP_JOB_KIND": "processing",
        "CVLOOP_JOB_ID": str(job_id),
        "CVLOOP_RUN_ID": str(run_id),
    }


def test_the_docs_describe_the_layout_of_the_module() -> None:
    block = JOB_RUNNER_DOC.read_text().split("$CVLOOP_JOB_DIR/\n", 1)[1].split("```", 1)[0]
    documented = {match.group(1) for match in re.finditer(r"^  (\S+)", block, re.MULTILINE)}
    alias = f"{DATASETS_DIR}/<alias>"
    assert documented == {
        JOB_FILE,
        PARAMETERS_FILE,
        f"{BASE_MODEL_DIR}/",
        MODEL_VERSION_FILE,
        f"{BASE_MODEL_DIR}/{CHECKPOINT_FILE}",
        f"{alias}/{ASSETS_FILE}",
        f"{alias}/{IMAGES_DIR}/...",
        f"{alias}/{LABELS_FILE}",
        f"{OUTPUTS_DIR}/",
        f"{OUTPUTS_DIR}/{METRICS_FILE}",
        f"{OUTPUTS_DIR}/{IO_FILE}",
    }
