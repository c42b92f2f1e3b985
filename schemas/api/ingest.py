"""Bodies of ingest's monitor endpoint (docs/api.md, "Ingest"): what a monitoring-only deployment's
producer sends over HTTP, and what it gets back.

A monitor body holds the same fields as a `predictions.raw` message without its envelope (a unit test
keeps the two in step), so both entrances go through one set of rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.api.common import ErrorBody
from schemas.events import MAX_TAGS, ImageKey, RoleResult, Side, SourceName, Tag
from schemas.events import _check_shapes_inside as check_shapes_inside  # the events' own rule
from schemas.limits import JsonObject

MAX_BATCH_ITEMS = 500


class MonitorFields(BaseModel):
    """Everything but the image: the `data` part of a multipart request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: Side
    height: Side
    champion: RoleResult
    shadow: RoleResult | None = Field(None, description="The shadow's answer; its latency_ms is required.")
    source: SourceName = "monitor_api"
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: JsonObject = Field(default_factory=dict)
    predicted_at: datetime | None = Field(None, description="When the model answered; defaults to now.")

    @model_validator(mode="after")
    def _shapes_inside(self) -> Self:
        check_shapes_inside(self.width, self.height, champion=self.champion, shadow=self.shadow)
        return self


class MonitorPrediction(MonitorFields):
    """A JSON monitor request: the image travels base64-encoded or as an object key already stored."""

    image_object_key: ImageKey | None = None
    image_base64: str | None = Field(None, description="The image file (JPEG, PNG or WebP), base64-encoded.")

    @model_validator(mode="after")
    def _one_image(self) -> Self:
        if (self.image_object_key is None) == (self.image_base64 is None):
            raise ValueError("exactly one of image_object_key and image_base64 must be given")
        return self


class MonitorBatch(BaseModel):
    """Items are validated one by one, so one bad item is answered on its own and the rest go in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_BATCH_ITEMS, description="Each one a MonitorPrediction."
    )


class PredictionAccepted(BaseModel):
    """201: the new prediction's id."""

    prediction_id: UUID


class AlreadyLogged(ErrorBody):
    """409: the image is already logged for the deployment; the id of the prediction that is."""

    prediction_id: UUID


class BatchItemResult(BaseModel):
    index: int = Field(ge=0)
    status: int = Field(description="The status this item alone would have had: 201, 409, 4xx.")
    prediction_id: UUID | None = None
    detail: str | None = Field(None, description="Why it was refused, naming the field.")


class BatchResults(BaseModel):
    results: list[BatchItemResult]
