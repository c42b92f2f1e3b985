"""Predicted assets, their review and their submission to a feedback-loop dataset version."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from schemas.predictions import Prediction
from schemas.vocabulary import ReviewStatus

from .common import Answer, Body

MAX_SUBMIT = 10_000


class PredictedAssetFields(BaseModel):
    """What a predicted asset holds, as the api shows it; the repository's record adds its project and
    the api's answer a presigned image URL, so the two cannot drift apart."""

    prediction_id: UUID
    deployment_id: UUID
    image_object_key: str
    image_sha256: str
    width: int
    height: int
    source: str
    tags: list[str]
    metadata: dict[str, Any]
    champion_prediction: dict[str, Any]
    champion_latency_ms: float
    champion_model_version_id: UUID | None
    shadow_prediction: dict[str, Any] | None
    shadow_latency_ms: float | None
    shadow_model_version_id: UUID | None
    shadow_error: str | None
    features: dict[str, float]
    outlier_score: float | None
    uncertainty: float | None = Field(
        None, description="The champion's uncertainty (see the review-queue settings)."
    )
    disagreement: float | None = Field(None, description="1 - the shadow's agreement with the champion.")
    acquisition_score: float | None = Field(
        None, description="The weighted mean of the three above, where present: what the queue puts first."
    )
    image_dhash: str | None = Field(
        None, description="The image's difference hash: near-duplicates share it."
    )
    predicted_at: datetime
    created_at: datetime
    status: ReviewStatus
    review: dict[str, Any] | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    submitted_dataset_version_id: UUID | None
    submitted_asset_id: UUID | None
    submitted_at: datetime | None


class PredictedAssetOut(Answer, PredictedAssetFields):
    image_url: str | None = Field(None, description="Presigned GET of the image (GET answers).")
    audit: bool = Field(
        False,
        description="In the deployment's random audit slice: placed in the queue regardless of its content, "
        "so its review counts toward the unbiased quality figures.",
    )
    duplicates: int | None = Field(
        None,
        description="In the review queue (`order=most_instructive`): how many predictions of this status, "
        "itself included, share its image hash and are shown as this one.",
    )


class ReviewRequest(Body):
    review: Prediction = Field(description="The corrected prediction, of the deployment's detection type.")


class SubmitRequest(Body):
    dataset_version_id: UUID = Field(description="A dataset version attached to the feedback loop.")
    prediction_ids: list[UUID] | None = Field(None, min_length=1, max_length=MAX_SUBMIT)
    all_reviewed: bool = False

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        if (self.prediction_ids is not None) == self.all_reviewed:
            raise ValueError("give either prediction_ids or all_reviewed: true")
        return self


class Submitted(Answer):
    prediction_id: UUID
    asset_id: UUID


class SubmitOut(Answer):
    submitted: list[Submitted]


class SubmitReviewedRequest(Body):
    dataset_version_id: UUID = Field(description="A dataset version attached to the feedback loop.")


class PredictionCount(Answer):
    count: int = Field(description="Predicted assets the filter matches.")
