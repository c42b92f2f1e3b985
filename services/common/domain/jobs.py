"""Jobs, their runs, logs and output files, and the processings a job can run."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from schemas.events import JobKind
from schemas.vocabulary import RunStatus, TargetType


class JobRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    project_id: UUID
    job_id: UUID
    attempt: int
    status: RunStatus
    reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    launched_by_key_id: UUID | None = None  # None: the platform launched it


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    project_id: UUID
    kind: JobKind
    target_type: TargetType
    target_id: UUID
    processing_id: UUID | None
    parameters: dict[str, Any]
    request_id: str | None
    created_at: datetime


class LogLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    sequence: int
    line: str
    logged_at: datetime


class OutputFile(BaseModel):
    """A file a run staged out, stored in the object store."""

    model_config = ConfigDict(frozen=True)

    name: str
    object_key: str
    sha256: str
    size_bytes: int


class Processing(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    project_id: UUID
    name: str
    description: str
    target_type: TargetType
    command: list[str] | None
    image: str | None
    parameters_schema: dict[str, Any]
    created_at: datetime
    created_by_key_id: UUID | None = None  # the admin key that registered it
