"""A deployment's monitoring as the API answers it (schemas/api/monitoring.py): the query of a time
range, and the answers' models re-exported for SDK users."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.api.deployments import ComparisonOut as Comparison
from schemas.api.deployments import GateDecisionOut as GateDecision
from schemas.api.monitoring import DriftReportOut as DriftReport
from schemas.api.monitoring import OutliersOut as Outliers
from schemas.api.monitoring import QualityOut as Quality
from schemas.api.monitoring import TrafficOut as Latency

__all__ = ["Comparison", "DriftReport", "GateDecision", "Latency", "Outliers", "Quality", "span_params"]


def span_params(start: datetime | None, end: datetime | None, bucket_s: int | None) -> dict[str, Any]:
    """The query of a time range (None: the server's default: the last day, hourly)."""
    return {
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "bucket_s": bucket_s,
    }
