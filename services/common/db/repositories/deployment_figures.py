"""Figures about a deployment that the review page shows: the submissions since its latest training,
and its latest predictions as each role answered them (for the champion-vs-shadow comparison)."""

from __future__ import annotations

from uuid import UUID

from schemas.events import training_request_prefix
from services.common.domain.deployments import RoleAnswers

from .base import Db


async def submitted_since_training(db: Db, project_id: UUID, deployment_id: UUID) -> int:
    """SUBMITTED predicted assets submitted after the deployment's latest pipeline experiment was created
    (the pipeline names its training requests "<deployment id>:<cycle>"); all of them before the first."""
    return await db.fetchval(
        """SELECT count(*) FROM predicted_assets
           WHERE project_id = $1 AND deployment_id = $2 AND status = 'SUBMITTED'
             AND submitted_at > coalesce(
                 (SELECT max(created_at) FROM experiments
                  WHERE project_id = $1 AND starts_with(training_request_id, $3)),
                 '-infinity')""",
        project_id,
        deployment_id,
        training_request_prefix(deployment_id),
    )


async def latest_answers(
    db: Db, project_id: UUID, deployment_id: UUID, champion_id: UUID, shadow_id: UUID | None, limit: int
) -> list[RoleAnswers]:
    """The latest `limit` predictions the champion `champion_id` answered, newest first; a shadow answer
    counts only when it came from `shadow_id` (an earlier shadow's is left out)."""
    rows = await db.fetch(
        """SELECT champion_prediction, champion_latency_ms, review,
                  CASE WHEN shadow_model_version_id = $4 THEN shadow_prediction END AS shadow_prediction,
                  CASE WHEN shadow_model_version_id = $4 THEN shadow_latency_ms END AS shadow_latency_ms
           FROM predicted_assets
           WHERE project_id = $1 AND deployment_id = $2 AND champion_model_version_id = $3
           ORDER BY created_at DESC LIMIT $5""",
        project_id,
        deployment_id,
        champion_id,
        shadow_id,
        limit,
    )
    return [RoleAnswers(**dict(r)) for r in rows]
