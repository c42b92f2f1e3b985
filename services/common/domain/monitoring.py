"""What the monitoring aggregations answer about a deployment's predictions over a time range, bucket by
bucket (records; the SQL that computes them is in db/repositories/monitoring.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from schemas.vocabulary import Role


@dataclass(frozen=True)
class TimeRange:
    """[start, end) cut into buckets of `bucket`, the first starting at `start`."""

    start: datetime
    end: datetime
    bucket: timedelta

    @property
    def buckets(self) -> int:
        return -(-(self.end - self.start) // self.bucket)  # ceiling division


@dataclass(frozen=True)
class RoleTraffic:
    """One role's predictions of one bucket and their latency percentiles (milliseconds)."""

    start: datetime
    role: Role
    predictions: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float


@dataclass(frozen=True)
class HistogramBin:
    lower: float
    upper: float
    count: int


@dataclass(frozen=True)
class OutlierRate:
    """One bucket's scored predictions and how many scored above the level."""

    start: datetime
    scored: int
    above: int


@dataclass(frozen=True)
class ReviewedAnswer:
    """A reviewed prediction of a bucket: the review and what each role answered (raw JSON)."""

    start: datetime
    review: dict[str, Any]
    champion_prediction: dict[str, Any]
    champion_model_version_id: UUID | None
    shadow_prediction: dict[str, Any] | None
    shadow_model_version_id: UUID | None
