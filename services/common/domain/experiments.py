"""An experiment and the artifacts its training left."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.triggers import TriggerFired
from schemas.vocabulary import ExperimentStatus


class Artifact(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    name: str
    object_key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


class Experiment(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    project_id: UUID
    name: str
    base_model_version_id: UUID | None
    parameters: dict[str, Any]
    status: ExperimentStatus
    training_request_id: str | None
    training_trigger: TriggerFired | None = None  # the rule that requested a pipeline training
    dataset_versions: dict[str, UUID]
    artifacts: list[Artifact]
    created_at: datetime
    finished_at: datetime | None
