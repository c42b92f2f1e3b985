"""A deployment's predictions aggregated over a time range in SQL, bucket by bucket: volume and latency
percentiles by role, the outlier-score histogram and the share above a level, and the reviewed
predictions that quality over time is computed from. The index of migration 0010 covers the first
three, so they read the index only."""

from __future__ import annotations

from uuid import UUID

from schemas.vocabulary import Role
from services.common.domain.monitoring import (
    HistogramBin,
    OutlierRate,
    ReviewedAnswer,
    RoleTraffic,
    TimeRange,
)

from .base import Db

_IN_RANGE = "project_id = $1 AND deployment_id = $2 AND predicted_at >= $3 AND predicted_at < $4"


async def traffic(db: Db, project_id: UUID, deployment_id: UUID, span: TimeRange) -> list[RoleTraffic]:
    """Predictions and latency p50/p95/p99 per bucket and role (a shadow counts where it answered)."""
    rows = await db.fetch(
        f"""SELECT date_bin($5, predicted_at, $3) AS start, r.role, count(*) AS predictions,
                   percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY r.latency_ms) AS p
            FROM predicted_assets
            CROSS JOIN LATERAL (VALUES ('champion', champion_latency_ms), ('shadow', shadow_latency_ms))
                AS r(role, latency_ms)
            WHERE {_IN_RANGE} AND r.latency_ms IS NOT NULL
            GROUP BY 1, 2 ORDER BY 1, 2""",
        project_id,
        deployment_id,
        span.start,
        span.end,
        span.bucket,
    )
    return [
        RoleTraffic(r["start"], Role(r["role"]), r["predictions"], r["p"][0], r["p"][1], r["p"][2])
        for r in rows
    ]


async def outlier_histogram(
    db: Db, project_id: UUID, deployment_id: UUID, span: TimeRange, bins: int
) -> list[HistogramBin]:
    """The scores of the range in `bins` equal bins over [0, 1], the last one closed (holds 1.0)."""
    rows = await db.fetch(
        f"""SELECT least(width_bucket(outlier_score, 0.0, 1.0, $5), $5) AS bin, count(*) AS count
            FROM predicted_assets WHERE {_IN_RANGE} AND outlier_score IS NOT NULL GROUP BY 1""",
        project_id,
        deployment_id,
        span.start,
        span.end,
        bins,
    )
    counts = {r["bin"]: r["count"] for r in rows}
    return [HistogramBin(i / bins, (i + 1) / bins, counts.get(i + 1, 0)) for i in range(bins)]


async def outlier_rates(
    db: Db, project_id: UUID, deployment_id: UUID, span: TimeRange, level: float
) -> list[OutlierRate]:
    """Per bucket with scores: how many predictions were scored and how many scored above `level`."""
    rows = await db.fetch(
        f"""SELECT date_bin($5, predicted_at, $3) AS start, count(*) AS scored,
                   count(*) FILTER (WHERE outlier_score > $6) AS above
            FROM predicted_assets WHERE {_IN_RANGE} AND outlier_score IS NOT NULL
            GROUP BY 1 ORDER BY 1""",
        project_id,
        deployment_id,
        span.start,
        span.end,
        span.bucket,
        level,
    )
    return [OutlierRate(r["start"], r["scored"], r["above"]) for r in rows]


async def reviewed_answers(
    db: Db, project_id: UUID, deployment_id: UUID, span: TimeRange, limit: int
) -> list[ReviewedAnswer]:
    """The range's reviewed predictions, oldest first, at most `limit`, with the bucket of each."""
    rows = await db.fetch(
        f"""SELECT date_bin($5, predicted_at, $3) AS start, review, champion_prediction,
                   champion_model_version_id, shadow_prediction, shadow_model_version_id
            FROM predicted_assets WHERE {_IN_RANGE} AND review IS NOT NULL
            ORDER BY predicted_at LIMIT $6""",
        project_id,
        deployment_id,
        span.start,
        span.end,
        span.bucket,
        limit,
    )
    return [ReviewedAnswer(**dict(r)) for r in rows]
