"""What scoring stores: drift reports and outlier scores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from schemas.events import FeatureDrift, MultipleTestingCorrection


class DriftReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: UUID
    project_id: UUID
    deployment_id: UUID
    reference_id: UUID
    window_start: datetime
    window_end: datetime
    window_size: int
    reference_size: int
    correction: MultipleTestingCorrection
    alpha: float
    features: list[FeatureDrift]
    drift_detected: bool
    created_at: datetime


@dataclass(frozen=True)
class Score:
    prediction_id: UUID
    score: float


@dataclass(frozen=True)
class StoredScore:
    score: float  # the score stored for the prediction: the first one recorded
    new: bool  # recorded by this call (False for a replay)
