"""A predicted asset, the filter its listing takes, and what submitting it gives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.api.predictions import PredictedAssetFields
from schemas.vocabulary import ReviewStatus


class PredictedAsset(PredictedAssetFields):
    model_config = ConfigDict(frozen=True)

    project_id: UUID
    status: ReviewStatus


class PredictionFilter(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: ReviewStatus | None = None
    created_from: datetime | None = Field(None, description="Inclusive.")
    created_until: datetime | None = Field(None, description="Exclusive.")
    # The model's time, as monitoring buckets and drift windows count it (created_at is when it was logged).
    predicted_from: datetime | None = Field(None, description="Inclusive.")
    predicted_until: datetime | None = Field(None, description="Exclusive.")
    min_outlier_score: float | None = Field(None, ge=0.0, le=1.0)
    max_outlier_score: float | None = Field(None, ge=0.0, le=1.0)
    tags: list[str] = Field(default_factory=list, description="The asset carries all of them.")


@dataclass(frozen=True)
class Submission:
    prediction_id: UUID
    asset_id: UUID  # the dataset version's asset holding the prediction's image and review
    newly_submitted: bool  # False when this exact submission had already been made
