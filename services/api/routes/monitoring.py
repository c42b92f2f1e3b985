"""A deployment's monitoring over a time range, aggregated in SQL: drift reports, outlier scores,
prediction volume and latency by role, champion/shadow quality from the reviews."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from schemas.api.common import Page as PageOf
from schemas.api.monitoring import (
    DriftReportOut,
    HistogramBinOut,
    OutlierRateBucket,
    OutliersOut,
    QualityOut,
    TrafficBucket,
    TrafficOut,
)
from services.common.db.repositories import drift_reports, monitoring
from services.common.domain.monitoring import TimeRange

from ..context import Ctx, Page, ReadKey
from ..monitoring import period, quality_buckets, time_range
from .deployments import existing

router = APIRouter(prefix="/v1/deployments/{deployment_id}/monitoring", tags=["monitoring"])
Span = Annotated[TimeRange, Depends(time_range)]
MAX_BINS = 100
MAX_REVIEWED = 20_000  # reviews of one answer: quality per bucket is computed in Python (COCO AP)


def _span(span: TimeRange) -> dict[str, object]:
    return {"start": span.start, "end": span.end, "bucket_s": int(span.bucket.total_seconds())}


@router.get("/drift")
async def drift(
    ctx: Ctx,
    key: ReadKey,
    deployment_id: UUID,
    bounds: Annotated[tuple[datetime, datetime], Depends(period)],
    page: Page,
    flagged: Annotated[bool, Query(description="Only the reports that detected drift.")] = False,
) -> PageOf[DriftReportOut]:
    """Drift reports whose window ended in the range, oldest first."""
    await existing(ctx.pool, key.project_id, deployment_id)
    reports, total = await drift_reports.drift_reports_between(
        ctx.pool,
        key.project_id,
        deployment_id,
        *bounds,
        flagged_only=flagged,
        limit=page.limit,
        offset=page.offset,
    )
    return PageOf[DriftReportOut](
        items=[DriftReportOut.model_validate(r.model_dump()) for r in reports], total=total
    )


@router.get("/outliers")
async def outliers(
    ctx: Ctx,
    key: ReadKey,
    deployment_id: UUID,
    span: Span,
    level: Annotated[float, Query(ge=0.0, le=1.0, description="The rate counts scores above it.")] = 0.99,
    bins: Annotated[int, Query(ge=1, le=MAX_BINS, description="Histogram bins over [0, 1].")] = 20,
) -> OutliersOut:
    """The outlier-score histogram of the range, and per bucket the share of scores above `level`."""
    await existing(ctx.pool, key.project_id, deployment_id)
    histogram = await monitoring.outlier_histogram(ctx.pool, key.project_id, deployment_id, span, bins)
    rates = await monitoring.outlier_rates(ctx.pool, key.project_id, deployment_id, span, level)
    return OutliersOut(
        **_span(span),
        level=level,
        histogram=[HistogramBinOut(lower=b.lower, upper=b.upper, count=b.count) for b in histogram],
        buckets=[
            OutlierRateBucket(start=r.start, scored=r.scored, above=r.above, rate=r.above / r.scored)
            for r in rates
        ],
    )


@router.get("/latency")
async def latency(ctx: Ctx, key: ReadKey, deployment_id: UUID, span: Span) -> TrafficOut:
    """Predictions and latency percentiles per bucket and role."""
    await existing(ctx.pool, key.project_id, deployment_id)
    rows = await monitoring.traffic(ctx.pool, key.project_id, deployment_id, span)
    return TrafficOut(**_span(span), buckets=[TrafficBucket.model_validate(r) for r in rows])


@router.get("/quality")
async def quality(ctx: Ctx, key: ReadKey, deployment_id: UUID, span: Span) -> QualityOut:
    """Champion and shadow against the reviews, per bucket of prediction time."""
    await existing(ctx.pool, key.project_id, deployment_id)
    answers = await monitoring.reviewed_answers(
        ctx.pool, key.project_id, deployment_id, span, MAX_REVIEWED + 1
    )
    kept = answers[:MAX_REVIEWED]
    return QualityOut(
        **_span(span),
        reviewed=len(kept),
        truncated=len(answers) > MAX_REVIEWED,
        buckets=await asyncio.to_thread(quality_buckets, kept),  # off the event loop: COCO AP, mask AP
    )
