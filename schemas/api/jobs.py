"""Jobs with their runs and logs, and processings launched on model versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import Field, model_validator

from schemas.events import JobKind
from schemas.limits import Line, Text
from schemas.vocabulary import RunStatus

from .common import Answer, Body, Description, JsonObject, Name


class LaunchedBy(Answer):
    key_id: UUID
    key_name: str


class JobRunOut(Answer):
    id: UUID
    attempt: int
    status: RunStatus
    reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None = Field(None, description="From start to finish, once finished.")
    launched_by: LaunchedBy | None = Field(
        None,
        description="The API key that launched the run, at created_at; null: the platform launched it "
        "(a training the pipeline requested).",
    )


class JobOut(Answer):
    id: UUID
    kind: JobKind
    target_type: str
    target_id: UUID
    processing_id: UUID | None
    parameters: dict[str, Any]
    created_at: datetime
    latest_run: JobRunOut | None = None
    runs: list[JobRunOut] | None = Field(None, description="Every run, in a single job's answer.")


class LogLineOut(Answer):
    number: int
    text: str


class LogsOut(Answer):
    run_id: UUID
    lines: list[LogLineOut]
    finished: bool


class ProcessingCreate(Body):
    name: Name
    description: Description = ""
    command: list[Annotated[Text, Field(max_length=4096)]] | None = Field(None, min_length=1, max_length=256)
    image: Annotated[Line, Field(min_length=1, max_length=1024)] | None = None
    parameters_schema: JsonObject = Field(
        default_factory=dict,
        description="JSON Schema of the parameters; its `properties` name the parameters it accepts.",
    )

    @model_validator(mode="after")
    def _runnable(self) -> Self:
        if self.command is None and self.image is None:
            raise ValueError("give a command or an image")
        return self


class ProcessingOut(Answer):
    id: UUID
    name: str
    description: str
    command: list[str] | None
    image: str | None
    parameters_schema: dict[str, Any]
    created_at: datetime
    created_by_key_id: UUID | None = Field(None, description="The admin API key that registered it.")


class ProcessingLaunch(Body):
    processing_id: UUID
    parameters: JsonObject = Field(default_factory=dict)
