"""Experiments, their artifacts, and exporting one as a model version."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self
from uuid import UUID

from pydantic import Field, model_validator

from schemas.model_io import ModelIO
from schemas.names import FileName
from schemas.triggers import TriggerFired

from .common import Alias, Answer, Body, Description, JsonObject, Name, ObjectKeyText, Version


class ExperimentCreate(Body):
    name: Name
    base_model_version_id: UUID | None = None
    parameters: JsonObject = Field(default_factory=dict)
    dataset_versions: dict[Alias, UUID] = Field(default_factory=dict, description="Alias to dataset version.")


class ArtifactCreate(Body):
    name: FileName
    object_key: ObjectKeyText


class ArtifactOut(Answer):
    id: UUID
    name: str
    object_key: str
    sha256: str
    size_bytes: int


class ExperimentOut(Answer):
    id: UUID
    name: str
    base_model_version_id: UUID | None
    parameters: dict[str, Any]
    status: str
    dataset_versions: dict[str, UUID]
    training_request_id: str | None = Field(
        None, description="The pipeline's training request (`<deployment id>:<cycle>`) that made it, if any."
    )
    training_trigger: TriggerFired | None = Field(
        None, description="The trigger rule that requested it and the figures that made it fire, if any."
    )
    artifacts: list[ArtifactOut] = Field(default_factory=list)
    created_at: datetime
    finished_at: datetime | None


class ExportRequest(Body):
    """Export into an existing model (`model_id`) or a new one named `model_name`."""

    model_id: UUID | None = None
    model_name: Name | None = None
    model_description: Description = ""
    version: Version
    description: Description = ""
    io: ModelIO | None = Field(
        None,
        description="Default: the experiment's io.json artifact when its trainer wrote one, else the base "
        "model version's.",
    )

    @model_validator(mode="after")
    def _one_model(self) -> Self:
        if (self.model_id is None) == (self.model_name is None):
            raise ValueError("exactly one of model_id and model_name must be given")
        return self
