"""A deployment's retrain trigger policy (on its continuous-training settings) and what a training request
records when one of its rules fired. The decision itself is `services.common.domain.triggers.decide`."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .limits import Finite
from .vocabulary import TriggerRule

# Bounds of what the pipeline keeps per deployment (its faust table's value): the last reports and scores.
MAX_DRIFT_REPORTS = 100
MAX_OUTLIER_WINDOW = 1000
MAX_QUALITY_REVIEWS = 10_000


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftRule(_Part):
    """Fires when each of the last `reports` drift reports since the last training was flagged, with at
    least `min_features` features drifted after the multiple-testing correction."""

    reports: int = Field(ge=1, le=MAX_DRIFT_REPORTS, description="K: consecutive drift reports.")
    min_features: int = Field(1, ge=1, le=1000, description="M: drifted features a report needs.")


class OutlierRateRule(_Part):
    """Fires when, over the last `window` predictions scored since the last training, the share whose
    outlier score is above `level` exceeds `rate`."""

    level: Finite = Field(ge=0.0, lt=1.0, description="Outlier score a prediction must be above.")
    window: int = Field(ge=1, le=MAX_OUTLIER_WINDOW, description="Predictions scored (a full window).")
    rate: Finite = Field(ge=0.0, lt=1.0, description="Share of the window above `level` that fires.")


class QualityRule(_Part):
    """Fires when the champion's accuracy (AP for detection) on its last `reviews` reviewed predictions is
    below `below`, or has dropped by more than `drop` against its first `reviews` after it was deployed."""

    reviews: int = Field(ge=1, le=MAX_QUALITY_REVIEWS, description="N: reviewed predictions measured.")
    below: Finite | None = Field(None, gt=0.0, le=1.0, description="Level the metric must stay at.")
    drop: Finite | None = Field(None, gt=0.0, le=1.0, description="Largest drop from its deployed value.")

    @model_validator(mode="after")
    def _one_level(self) -> Self:
        if self.below is None and self.drop is None:
            raise ValueError("give below, drop or both")
        return self


class TriggerPolicy(_Part):
    """The rules besides the submitted-count threshold; any of them requests a training, once the cooldown
    since the last one has passed and at least `min_submitted` assets were submitted since it."""

    drift: DriftRule | None = None
    outlier_rate: OutlierRateRule | None = None
    quality: QualityRule | None = None
    cooldown_s: Finite = Field(
        0.0, ge=0.0, le=365 * 86400, description="Seconds after a training request before the next one."
    )
    min_submitted: int = Field(
        1, ge=1, le=2**31 - 1, description="Submitted assets since the last training any rule needs."
    )

    @property
    def has_data_rule(self) -> bool:
        return any(rule is not None for rule in (self.drift, self.outlier_rate, self.quality))


class TriggerFired(_Part):
    """Which rule requested a training and the figures that made it fire."""

    rule: TriggerRule
    figures: dict[str, float] = Field(
        description="The rule's observed figures and levels, e.g. submitted and threshold; "
        "flagged_reports and min_drifted_features; rate and level; metric values."
    )
