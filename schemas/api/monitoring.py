"""A deployment's monitoring over a time range: drift reports, outlier scores, volume and latency, and
champion/shadow quality from the reviews, bucket by bucket."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import AliasChoices, Field

from schemas.events import FeatureDrift, MultipleTestingCorrection
from schemas.vocabulary import Role

from .common import Answer


class Span(Answer):
    start: datetime = Field(description="Inclusive; the first bucket starts here.")
    end: datetime = Field(description="Exclusive.")
    bucket_s: int = Field(description="Each bucket's length in seconds.")


class DriftReportOut(Answer):
    id: UUID = Field(
        validation_alias=AliasChoices("id", "event_id"), description="The DriftReported event's id."
    )
    reference_id: UUID = Field(description="The training-data reference the window was tested against.")
    window_start: datetime
    window_end: datetime
    window_size: int = Field(description="Predictions in the window.")
    reference_size: int
    correction: MultipleTestingCorrection
    alpha: float
    features: list[FeatureDrift] = Field(description="Per feature: KS statistic, p-value, drifted.")
    drift_detected: bool = Field(description="Some feature drifted after the correction.")


class TrafficBucket(Answer):
    start: datetime
    role: Role
    predictions: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float


class TrafficOut(Span):
    buckets: list[TrafficBucket] = Field(description="Buckets without predictions are left out.")


class HistogramBinOut(Answer):
    lower: float
    upper: float = Field(description="Exclusive, except the last bin's 1.0.")
    count: int


class OutlierRateBucket(Answer):
    start: datetime
    scored: int = Field(description="Predictions of the bucket with an outlier score.")
    above: int = Field(description="Of those, how many scored above the level.")
    rate: float = Field(description="above / scored.")


class OutliersOut(Span):
    level: float
    histogram: list[HistogramBinOut] = Field(description="Scores of the whole range.")
    buckets: list[OutlierRateBucket] = Field(description="Buckets without scores are left out.")


class QualityBucket(Answer):
    start: datetime
    role: Role
    model_version_ids: list[UUID] = Field(description="The versions that answered in this role then.")
    quality: dict[str, float] = Field(
        description="Against the bucket's reviews: accuracy (classification) or ap, ap50, ar "
        "(detection; segmentation: of the polygons' boxes, with mask_ap, mask_ap50, mask_ar of their "
        "masks), and `reviewed`."
    )


class QualityOut(Span):
    reviewed: int = Field(description="Reviewed predictions looked at.")
    truncated: bool = Field(description="The range holds more reviews than one answer looks at.")
    buckets: list[QualityBucket]
