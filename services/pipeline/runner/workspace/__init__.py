"""The job workspace: the folder a job's command runs in, and what it holds (the training-entrypoint
contract, documented in the README). The runner stages it in before the command and stages the command's
outputs out after it, locally in its own process, on Kubernetes in the Job's pod
(`python -m services.pipeline.runner.workspace`).

    $CVLOOP_JOB_DIR/
      job.json                       JobFile
      parameters.json                the job's parameters (training: the experiment's), less the
                                     runner's own (timeout_s, resources)
      base_model/                    the base (training) or target (processing) model version's files
      base_model/model_version.json  ModelVersionFile
      datasets/<alias>/assets.jsonl  one AssetLine per asset
      datasets/<alias>/images/...    the assets' images, named <asset id><extension>
      datasets/<alias>/labels.json   the dataset version's labels, when it has a labelmap
      outputs/                       written by the job
      outputs/metrics.json           optional {name: number}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from schemas.events import JobKind
from schemas.model_io import ModelIO
from schemas.predictions import DetectionType, Prediction

# The environment a job's command gets besides its own.
JOB_DIR_ENV = "CVLOOP_JOB_DIR"
JOB_KIND_ENV = "CVLOOP_JOB_KIND"
JOB_ID_ENV = "CVLOOP_JOB_ID"
RUN_ID_ENV = "CVLOOP_RUN_ID"


class _File(BaseModel):
    model_config = ConfigDict(frozen=True)


class JobFile(_File):
    """job.json."""

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
    """base_model/model_version.json."""

    id: UUID
    version: str
    detection_type: DetectionType
    labels: list[str] | None
    io: ModelIO | None
    training_parameters: dict[str, Any]


class AssetLine(_File):
    """A line of datasets/<alias>/assets.jsonl; `file` is relative to the alias folder."""

    asset_id: UUID
    file: str
    annotation: Prediction | None


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def job_file(self) -> Path:
        return self.root / "job.json"

    @property
    def parameters_file(self) -> Path:
        return self.root / "parameters.json"

    @property
    def base_model(self) -> Path:
        return self.root / "base_model"

    @property
    def model_version_file(self) -> Path:
        return self.base_model / "model_version.json"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    def dataset(self, alias: str) -> Path:
        return self.datasets / alias

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def metrics_file(self) -> Path:
        return self.outputs / "metrics.json"

    def job_env(self, job_id: UUID, run_id: UUID, kind: JobKind) -> dict[str, str]:
        return {
            JOB_DIR_ENV: str(self.root),
            JOB_KIND_ENV: kind.value,
            JOB_ID_ENV: str(job_id),
            RUN_ID_ENV: str(run_id),
        }
