"""Figures about a deployment: the submissions since its latest training (the review page shows their
count; the pipeline reconciles its own count from them), and its latest predictions as each role answered
them (for the champion-vs-shadow comparison)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from schemas.events import parse_training_request_id, training_request_prefix
from schemas.triggers import TriggerFired
from services.common.domain.deployments import RoleAnswers

from .base import Db


class TrainingProgress(NamedTuple):
    """Where a deployment's continuous training stands in Postgres."""

    latest_cycle: int  # the highest cycle with an experiment; 0 before the first
    latest_at: datetime | None  # when that experiment was created
    submitted_since: list[UUID]  # predictions submitted after that experiment was created (all before it)
    submitted_total: int
    submitted_before: list[UUID]  # the others: counted in earlier cycles


# SUBMITTED predicted assets of deployment $1 submitted after $2 (NULL: ever).
_SUBMITTED_SINCE = """FROM predicted_assets
    WHERE deployment_id = $1 AND status = 'SUBMITTED'
      AND submitted_at > coalesce($2::timestamptz, '-infinity')"""


async def latest_training_cycle(db: Db, deployment_id: UUID) -> int:
    """The highest cycle among the deployment's pipeline experiments; 0 before the first."""
    cycle, _ = await _latest_training(db, deployment_id)
    return cycle


async def _latest_training(db: Db, deployment_id: UUID) -> tuple[int, datetime | None]:
    """The highest cycle among the deployment's pipeline experiments (named "<deployment id>:<cycle>", in
    whichever project the settings chose) and when it was created; (0, None) before the first."""
    rows = await db.fetch(
        "SELECT training_request_id, created_at FROM experiments WHERE starts_with(training_request_id, $1)",
        training_request_prefix(deployment_id),
    )
    cycles = [(parse_training_request_id(r["training_request_id"])[1], r["created_at"]) for r in rows]
    return max(cycles, default=(0, None))


async def latest_trigger(
    db: Db, project_id: UUID, deployment_id: UUID
) -> tuple[str, TriggerFired | None] | None:
    """The deployment's latest pipeline training request id and the rule that fired it (None: requested
    before trigger rules); None before the first."""
    row = await db.fetchrow(
        """SELECT training_request_id, training_trigger FROM experiments
           WHERE project_id = $1 AND starts_with(training_request_id, $2)
           ORDER BY created_at DESC, id LIMIT 1""",
        project_id,
        training_request_prefix(deployment_id),
    )
    if row is None:
        return None
    trigger = row["training_trigger"]
    return row["training_request_id"], TriggerFired.model_validate(trigger) if trigger else None


async def submitted_since_training(db: Db, project_id: UUID, deployment_id: UUID) -> int:
    """SUBMITTED predicted assets submitted after the deployment's latest pipeline experiment was created;
    all of them before the first."""
    _, since = await _latest_training(db, deployment_id)
    return await db.fetchval(
        f"SELECT count(*) {_SUBMITTED_SINCE} AND project_id = $3", deployment_id, since, project_id
    )


async def training_progress(pool: asyncpg.Pool, deployment_id: UUID) -> TrainingProgress:
    """The deployment's latest cycle and submissions, read in one snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        cycle, since = await _latest_training(conn, deployment_id)
        rows = await conn.fetch(  # every submission ($2 NULL), each marked whether it came after $3
            f"SELECT prediction_id, submitted_at > coalesce($3::timestamptz, '-infinity') AS recent"
            f" {_SUBMITTED_SINCE}",
            deployment_id,
            None,
            since,
        )
    recent = [r["prediction_id"] for r in rows if r["recent"]]
    before = [r["prediction_id"] for r in rows if not r["recent"]]
    return TrainingProgress(cycle, since, recent, len(rows), before)


async def champion_reviews(
    db: Db, deployment_id: UUID, champion_id: UUID, limit: int, *, first: bool
) -> list[dict[str, Any]]:
    """Reviewed predictions the champion `champion_id` answered: the `limit` it answered first after it
    was deployed (`first`), or the `limit` reviewed last."""
    order = "predicted_at, prediction_id" if first else "reviewed_at DESC, prediction_id"
    rows = await db.fetch(
        f"""SELECT review, champion_prediction FROM predicted_assets
            WHERE deployment_id = $1 AND champion_model_version_id = $2 AND review IS NOT NULL
            ORDER BY {order} LIMIT $3""",
        deployment_id,
        champion_id,
        limit,
    )
    return [dict(r) for r in rows]


async def latest_answers(
    db: Db,
    project_id: UUID,
    deployment_id: UUID,
    champion_id: UUID,
    shadow_id: UUID | None,
    limit: int,
    *,
    paired_reviews: bool = False,
) -> list[RoleAnswers]:
    """The latest `limit` predictions the champion `champion_id` answered, newest first; a shadow answer
    counts only when it came from `shadow_id` (an earlier shadow's is left out). `paired_reviews`: only
    the reviewed ones `shadow_id` answered too (the promotion gate's evidence)."""
    paired = "AND review IS NOT NULL AND shadow_model_version_id = $4" if paired_reviews else ""
    rows = await db.fetch(
        f"""SELECT champion_prediction, champion_latency_ms, review,
                  CASE WHEN shadow_model_version_id = $4 THEN shadow_prediction END AS shadow_prediction,
                  CASE WHEN shadow_model_version_id = $4 THEN shadow_latency_ms END AS shadow_latency_ms
           FROM predicted_assets
           WHERE project_id = $1 AND deployment_id = $2 AND champion_model_version_id = $3 {paired}
           ORDER BY created_at DESC LIMIT $5""",
        project_id,
        deployment_id,
        champion_id,
        shadow_id,
        limit,
    )
    return [RoleAnswers(**dict(r)) for r in rows]


async def latest_reviews(db: Db, project_id: UUID, deployment_id: UUID, limit: int) -> list[asyncpg.Record]:
    """The deployment's latest `limit` reviewed predictions, newest review first: prediction id, review,
    and the champion's and shadow's answers."""
    return await db.fetch(
        """SELECT prediction_id, review, champion_prediction, shadow_prediction FROM predicted_assets
           WHERE project_id = $1 AND deployment_id = $2 AND review IS NOT NULL
           ORDER BY reviewed_at DESC, prediction_id LIMIT $3""",
        project_id,
        deployment_id,
        limit,
    )
