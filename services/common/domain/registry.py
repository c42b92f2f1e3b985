"""The registry's records: labelmaps, datasets and their versions, assets and annotations, models and
their versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.model_io import ModelIO
from schemas.predictions import DetectionType


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class Labelmap(_Row):
    id: UUID
    project_id: UUID
    name: str
    labels: list[str]
    created_at: datetime


class Dataset(_Row):
    id: UUID
    project_id: UUID
    name: str
    description: str
    created_at: datetime


class DatasetVersion(_Row):
    id: UUID
    project_id: UUID
    dataset_id: UUID
    version: str
    description: str
    detection_type: DetectionType
    labelmap_id: UUID | None
    created_at: datetime


class Asset(_Row):
    id: UUID
    project_id: UUID
    dataset_version_id: UUID
    object_key: str
    sha256: str
    width: int
    height: int
    created_at: datetime


class Annotation(_Row):
    id: UUID
    project_id: UUID
    asset_id: UUID
    shapes: dict[str, Any]
    created_by: str
    prediction_id: UUID | None
    created_at: datetime


class Model(_Row):
    id: UUID
    project_id: UUID
    name: str
    description: str
    created_at: datetime


class ModelFile(_Row):
    name: str
    object_key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


class NewModelVersion(_Row):
    version: str
    detection_type: DetectionType
    description: str = ""
    labelmap_id: UUID | None = None
    training_parameters: dict[str, Any] = Field(default_factory=dict)
    training_entrypoint: str | None = None
    training_image: str | None = None
    source_experiment_id: UUID | None = None
    io: ModelIO | None = Field(None, description="How serving calls it; None: not servable.")
    files: list[ModelFile] = Field(default_factory=list)
    dataset_versions: dict[str, UUID] = Field(default_factory=dict, description="Alias to dataset version.")
    created_by_key_id: UUID | None = None  # the API key that created it; None: the platform


class ModelVersion(NewModelVersion):
    id: UUID
    project_id: UUID
    model_id: UUID
    created_at: datetime
