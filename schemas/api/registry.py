"""The registry: uploads, labelmaps, datasets and their versions and assets, models and their versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, field_validator

from schemas.limits import Line, Text
from schemas.model_io import ModelIO
from schemas.names import FileName
from schemas.object_keys import validate_image_key
from schemas.predictions import DetectionType, Label, Prediction

from .common import Alias, Answer, Body, Description, JsonObject, Name, ObjectKeyText, Version


class UploadOut(Answer):
    object_key: str
    sha256: str
    size_bytes: int
    content_type: str


class LabelmapCreate(Body):
    name: Name
    labels: list[Label] = Field(min_length=1, max_length=10_000)

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"labels must be distinct; repeated: {', '.join(repeated)}")
        return labels


class LabelmapOut(Answer):
    id: UUID
    name: str
    labels: list[str]
    created_at: datetime


class DatasetCreate(Body):
    name: Name
    description: Description = ""


class DatasetOut(Answer):
    id: UUID
    name: str
    description: str
    created_at: datetime


class DatasetVersionCreate(Body):
    version: Version
    detection_type: DetectionType
    labelmap_id: UUID | None = None
    description: Description = ""


class DatasetVersionOut(Answer):
    id: UUID
    dataset_id: UUID
    version: str
    description: str
    detection_type: DetectionType
    labelmap_id: UUID | None
    created_at: datetime


class AssetCreate(Body):
    object_key: Annotated[Line, Field(description="An uploaded image's key (POST /v1/uploads?kind=images).")]
    annotation: Prediction | None = Field(None, description="Ground truth of the dataset version's type.")

    @field_validator("object_key")
    @classmethod
    def _image_key(cls, key: str) -> str:
        return validate_image_key(key)


class AnnotationOut(Answer):
    id: UUID
    shapes: dict[str, Any]
    created_by: str
    prediction_id: UUID | None
    created_at: datetime


class AssetOut(Answer):
    id: UUID
    dataset_version_id: UUID
    object_key: str
    sha256: str
    width: int
    height: int
    created_at: datetime
    annotations: list[AnnotationOut] = Field(default_factory=list)


class ModelCreate(Body):
    name: Name
    description: Description = ""


class ModelOut(Answer):
    id: UUID
    name: str
    description: str
    created_at: datetime


class ModelVersionCreate(Body):
    version: Version
    detection_type: DetectionType
    description: Description = ""
    labelmap_id: UUID | None = None
    training_parameters: JsonObject = Field(default_factory=dict)
    training_entrypoint: Annotated[Text, Field(max_length=1024)] | None = None
    training_image: Annotated[Line, Field(max_length=1024)] | None = None
    source_experiment_id: UUID | None = None
    dataset_versions: dict[Alias, UUID] = Field(default_factory=dict, description="Alias to dataset version.")
    io: ModelIO | None = Field(None, description="How serving calls it; None: not servable.")
    files: dict[FileName, ObjectKeyText] = Field(
        default_factory=dict, description="File name to uploaded object key (POST /v1/uploads?kind=models)."
    )


class ModelFileOut(Answer):
    name: str
    object_key: str
    sha256: str
    size_bytes: int


class ModelVersionOut(Answer):
    id: UUID
    model_id: UUID
    version: str
    description: str
    detection_type: DetectionType
    labelmap_id: UUID | None
    training_parameters: dict[str, Any]
    training_entrypoint: str | None
    training_image: str | None
    source_experiment_id: UUID | None
    dataset_versions: dict[str, UUID]
    io: ModelIO | None
    files: list[ModelFileOut]
    created_at: datetime
    created_by_key_id: UUID | None = Field(
        None, description="The API key that created it (admin when it has a training entrypoint or image)."
    )


class ModelFileDownload(Answer):
    name: str
    sha256: str
    size_bytes: int
    url: str = Field(description="A presigned GET of the file on the object store, valid until expires_at.")
    expires_at: datetime
