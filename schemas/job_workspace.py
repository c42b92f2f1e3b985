"""The job workspace: the folder a training job or a processing runs in, the one contract between the job
runner (which stages it in and out) and any trainer (which reads it and writes `outputs/`). Trainers are
user code and depend on this module alone; trainers in other languages read the JSON Schema files of its
files in `schemas/json/` (`job-workspace.*.schema.json`).

    $CVLOOP_JOB_DIR/
      job.json                       JobFile
      parameters.json                the job's parameters (training: the experiment's), less the
                                     runner's own (timeout_s, resources)
      base_model/                    the base (training) or target (processing) model version's files
      base_model/model_version.json  ModelVersionFile
      base_model/model.pt            the base version's checkpoint, when it carries one (PyTorch trainers)
      datasets/<alias>/assets.jsonl  one AssetLine per asset
      datasets/<alias>/images/...    the assets' images, named <asset id><extension>
      datasets/<alias>/labels.json   the dataset version's labels, when it has a labelmap
      outputs/                       written by the job
      outputs/metrics.json           optional {name: number}
      outputs/io.json                optional ModelIO: how serving calls the trained model, when it
                                     differs from the base version's (an image size)
      outputs/reference.bin          a reference job's reference (the scoring stream's format)
      outputs/reference.json         ReferenceSummary, beside it

The command runs with the folder as its working directory and the environment below set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from .events import JobKind
from .model_io import ModelIO
from .model_version import CHECKPOINT_FILE, LABELS_FILE, METRICS_FILE, MODEL_FILE
from .predictions import DetectionType, Prediction

# The job image with torch (deploy/docker/trainer-torch.Dockerfile, tagged like the platform's images):
# PyTorch trainers run `python -m ...` in it on Kubernetes; the local backend runs such a command with
# the torch environment's Python instead (JOBS_LOCAL_PYTHONS).
TORCH_TRAINER_IMAGE = "cvloop-trainer-torch"

# The environment a job's command gets besides its own.
JOB_DIR_ENV = "CVLOOP_JOB_DIR"
JOB_KIND_ENV = "CVLOOP_JOB_KIND"
JOB_ID_ENV = "CVLOOP_JOB_ID"
RUN_ID_ENV = "CVLOOP_RUN_ID"

TEST_ALIAS = "test"  # by convention the alias a trainer evaluates on and never trains on
TRAINING_ALIAS = "training"  # a reference job's dataset: the deployment's training data

# The layout, relative to the workspace folder (or to a dataset alias's folder).
JOB_FILE = "job.json"
PARAMETERS_FILE = "parameters.json"
BASE_MODEL_DIR = "base_model"
MODEL_VERSION_FILE = f"{BASE_MODEL_DIR}/model_version.json"
BASE_MODEL_ONNX = f"{BASE_MODEL_DIR}/{MODEL_FILE}"
BASE_MODEL_CHECKPOINT = f"{BASE_MODEL_DIR}/{CHECKPOINT_FILE}"
DATASETS_DIR = "datasets"
ASSETS_FILE = "assets.jsonl"
IMAGES_DIR = "images"
OUTPUTS_DIR = "outputs"
REFERENCE_DATA = "reference.bin"  # relative to outputs/
REFERENCE_SUMMARY = "reference.json"


class _File(BaseModel):
    # Readers ignore fields they do not know, so the runner can add fields without breaking trainers;
    # the JSON Schema says every field is present, as the runner writes them all.
    model_config = ConfigDict(frozen=True, extra="ignore", json_schema_serialization_defaults_required=True)


class JobFile(_File):
    """job.json: the job and its run; the job's target under its own name."""

    job_id: UUID
    run_id: UUID
    attempt: int
    kind: JobKind
    parameters: dict[str, Any]
    experiment_id: UUID | None = None
    model_version_id: UUID | None = None
    dataset_version_id: UUID | None = None
    deployment_id: UUID | None = None


class ModelVersionFile(_File):
    """base_model/model_version.json: the model version the job starts from."""

    id: UUID
    version: str
    detection_type: DetectionType
    labels: list[str] | None = None  # the labelmap's labels; None: the version has no labelmap
    io: ModelIO | None = None
    training_parameters: dict[str, Any] = {}


class AssetLine(_File):
    """A line of datasets/<alias>/assets.jsonl."""

    asset_id: UUID
    file: str  # relative to the alias folder: images/<asset id><extension>
    annotation: Prediction | None = None  # the asset's latest annotation


class ReferenceSummary(_File):
    """outputs/reference.json of a reference job: what the runner records with the reference it stores."""

    detector: str
    feature_names: list[str]
    training_size: int
    sample_size: int


# Each file's model, by the name of its JSON Schema file (schemas/jsonschema.py writes them).
FILE_MODELS: dict[str, type[_File]] = {
    "job-workspace.job": JobFile,
    "job-workspace.model-version": ModelVersionFile,
    "job-workspace.asset-line": AssetLine,
    "job-workspace.reference-summary": ReferenceSummary,
}


@dataclass(frozen=True)
class JobWorkspace:
    """The paths of a workspace rooted at `root`."""

    root: Path

    @property
    def job_file(self) -> Path:
        return self.root / JOB_FILE

    @property
    def parameters_file(self) -> Path:
        return self.root / PARAMETERS_FILE

    @property
    def base_model(self) -> Path:
        return self.root / BASE_MODEL_DIR

    @property
    def model_version_file(self) -> Path:
        return self.root / MODEL_VERSION_FILE

    @property
    def base_model_onnx(self) -> Path:
        return self.root / BASE_MODEL_ONNX

    @property
    def base_model_checkpoint(self) -> Path:
        return self.root / BASE_MODEL_CHECKPOINT

    @property
    def datasets(self) -> Path:
        return self.root / DATASETS_DIR

    def dataset(self, alias: str) -> Path:
        return self.datasets / alias

    def assets_file(self, alias: str) -> Path:
        return self.dataset(alias) / ASSETS_FILE

    def images(self, alias: str) -> Path:
        return self.dataset(alias) / IMAGES_DIR

    def labels_file(self, alias: str) -> Path:
        return self.dataset(alias) / LABELS_FILE

    @property
    def outputs(self) -> Path:
        return self.root / OUTPUTS_DIR

    @property
    def metrics_file(self) -> Path:
        return self.outputs / METRICS_FILE

    @property
    def reference_data(self) -> Path:
        return self.outputs / REFERENCE_DATA

    @property
    def reference_summary(self) -> Path:
        return self.outputs / REFERENCE_SUMMARY

    def relative(self, path: Path) -> str:
        """`path` as people see it in messages: relative to the workspace folder."""
        return path.relative_to(self.root).as_posix()

    def job_env(self, job_id: UUID, run_id: UUID, kind: JobKind) -> dict[str, str]:
        return {
            JOB_DIR_ENV: str(self.root),
            JOB_KIND_ENV: kind.value,
            JOB_ID_ENV: str(job_id),
            RUN_ID_ENV: str(run_id),
        }


def image_file(asset_id: UUID, extension: str) -> str:
    """An asset's `file` in assets.jsonl: its image's path relative to the alias folder."""
    return f"{IMAGES_DIR}/{asset_id}{'.' + extension if extension else ''}"
