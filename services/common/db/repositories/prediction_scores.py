"""Outlier scores by prediction id, written onto the predicted asset whichever of the two arrives first
(see migration 0004), and the reviewed predictions the quality metrics compare."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg

from services.common.domain.scoring import Score, StoredScore

from .base import Db, NotFound, transaction

DEADLOCK_RETRIES = 3


async def count_scores(db: Db, deployment_id: UUID) -> int:
    """How many of the deployment's predictions have an outlier score."""
    return await db.fetchval("SELECT count(*) FROM prediction_scores WHERE deployment_id = $1", deployment_id)


async def record_outlier_scores(
    db: Db, project_id: UUID, deployment_id: UUID, reference_id: UUID, scores: list[Score]
) -> dict[UUID, StoredScore]:
    """Store the scores and copy them onto the predicted assets already recorded; return what is stored
    for each prediction id (the first score recorded, so a replay with another reference changes
    nothing). Rows are written in the order given, the predictions' order on their partition, which is
    the order ingest's persistence inserts the same assets in, so the two do not wait on each other in
    a cycle; should a deadlock still happen, the write is retried."""
    first: dict[UUID, Score] = {}
    for score in scores:
        first.setdefault(score.prediction_id, score)
    unique = list(first.values())
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return await _record(db, project_id, deployment_id, reference_id, unique)
        except asyncpg.DeadlockDetectedError:
            if attempt == DEADLOCK_RETRIES - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def _record(
    db: Db, project_id: UUID, deployment_id: UUID, reference_id: UUID, scores: list[Score]
) -> dict[UUID, StoredScore]:
    async with transaction(db) as conn:
        try:
            rows = await conn.fetch(
                """INSERT INTO prediction_scores
                       (prediction_id, project_id, deployment_id, reference_id, outlier_score, scored_at)
                   SELECT id, $1, $2, $3, score, now() FROM unnest($4::uuid[], $5::float8[]) AS s(id, score)
                   ON CONFLICT (prediction_id) DO UPDATE SET
                       reference_id = COALESCE(prediction_scores.reference_id, EXCLUDED.reference_id),
                       outlier_score = COALESCE(prediction_scores.outlier_score, EXCLUDED.outlier_score),
                       scored_at = COALESCE(prediction_scores.scored_at, EXCLUDED.scored_at)
                   RETURNING prediction_id, outlier_score, asset_recorded,
                             scored_at = now() AS new  -- now() is this transaction's start""",
                project_id,
                deployment_id,
                reference_id,
                [s.prediction_id for s in scores],
                [s.score for s in scores],
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"deployment {deployment_id} is not in this project") from exc
        recorded = [r for r in rows if r["asset_recorded"]]
        if recorded:
            # A statement of its own: its snapshot includes assets committed while the upsert waited.
            await conn.execute(
                """UPDATE predicted_assets p SET outlier_score = s.score
                   FROM unnest($1::uuid[], $2::float8[]) AS s(id, score)
                   WHERE p.prediction_id = s.id AND p.outlier_score IS NULL""",
                [r["prediction_id"] for r in recorded],
                [r["outlier_score"] for r in recorded],
            )
    return {r["prediction_id"]: StoredScore(r["outlier_score"], r["new"]) for r in rows}


async def recent_reviewed(db: Db, deployment_id: UUID, limit: int) -> list[dict[str, Any]]:
    """The deployment's last `limit` reviewed predictions: review, champion and shadow predictions."""
    rows = await db.fetch(
        """SELECT review, champion_prediction, shadow_prediction FROM predicted_assets
           WHERE deployment_id = $1 AND review IS NOT NULL ORDER BY reviewed_at DESC LIMIT $2""",
        deployment_id,
        limit,
    )
    return [dict(r) for r in rows]
