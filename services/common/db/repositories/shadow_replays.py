"""Shadow replays: a new shadow version run over its deployment's latest reviewed images, its answers
recorded as shadow predictions on those assets. An answer is written only where that version has not
answered yet, so a replay run twice (a restart, two serving processes) records one answer per asset."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from schemas.vocabulary import ReplayStatus
from services.common.domain.deployments import ReplayImage, ShadowReplay

from .base import Db

_COLUMNS = (
    "deployment_id, shadow_model_version_id, status, selected, replayed, failed, error, started_at, "
    "finished_at"
)


async def start(db: Db, project_id: UUID, deployment_id: UUID, shadow_id: UUID) -> ShadowReplay | None:
    """The replay of `shadow_id` on the deployment to run now: new, or one a stopped process left
    running or one that failed (tried again); None when it is done."""
    row = await db.fetchrow(
        f"""INSERT INTO shadow_replays (project_id, deployment_id, shadow_model_version_id)
            VALUES ($1, $2, $3)
            ON CONFLICT (deployment_id, shadow_model_version_id) DO UPDATE
                SET status = 'running', error = NULL, finished_at = NULL
                WHERE shadow_replays.status <> 'done'
            RETURNING {_COLUMNS}""",
        project_id,
        deployment_id,
        shadow_id,
    )
    return ShadowReplay.model_validate(dict(row)) if row else None


async def to_replay(
    db: Db, deployment_id: UUID, champion_id: UUID, shadow_id: UUID, limit: int
) -> tuple[int, list[ReplayImage]]:
    """Of the deployment's latest `limit` reviewed predictions the champion answered (newest first, as
    the comparison and the gate read them), how many there are and those `shadow_id` has not answered."""
    rows = await db.fetch(
        """SELECT prediction_id, image_object_key, champion_prediction,
                  shadow_model_version_id IS NOT DISTINCT FROM $3 AS answered
           FROM predicted_assets
           WHERE deployment_id = $1 AND champion_model_version_id = $2 AND review IS NOT NULL
           ORDER BY created_at DESC LIMIT $4""",
        deployment_id,
        champion_id,
        shadow_id,
        limit,
    )
    pending = [
        ReplayImage(r["prediction_id"], r["image_object_key"], r["champion_prediction"])
        for r in rows
        if not r["answered"]
    ]
    return len(rows), pending


async def set_selected(db: Db, deployment_id: UUID, shadow_id: UUID, selected: int) -> None:
    await db.execute(
        """UPDATE shadow_replays SET selected = $3
           WHERE deployment_id = $1 AND shadow_model_version_id = $2""",
        deployment_id,
        shadow_id,
        selected,
    )


async def record_answer(
    db: Db,
    deployment_id: UUID,
    prediction_id: UUID,
    shadow_id: UUID,
    prediction: dict[str, Any],
    latency_ms: float,
    disagreement: float | None,
) -> bool:
    """Record the shadow's answer on the asset and count it on the replay, in one statement; False when
    `shadow_id` had answered it already (nothing changes)."""
    recorded = await db.fetchval(
        """WITH answered AS (
               UPDATE predicted_assets
               SET shadow_prediction = $4::jsonb, shadow_latency_ms = $5, shadow_model_version_id = $3,
                   shadow_error = NULL, disagreement = $6
               WHERE deployment_id = $1 AND prediction_id = $2
                 AND shadow_model_version_id IS DISTINCT FROM $3
               RETURNING prediction_id
           ), counted AS (
               UPDATE shadow_replays SET replayed = replayed + 1
               WHERE deployment_id = $1 AND shadow_model_version_id = $3
                 AND EXISTS (SELECT 1 FROM answered)
           )
           SELECT count(*) FROM answered""",
        deployment_id,
        prediction_id,
        shadow_id,
        prediction,
        latency_ms,
        disagreement,
    )
    return bool(recorded)


async def count_failure(db: Db, deployment_id: UUID, shadow_id: UUID) -> None:
    await db.execute(
        """UPDATE shadow_replays SET failed = failed + 1
           WHERE deployment_id = $1 AND shadow_model_version_id = $2""",
        deployment_id,
        shadow_id,
    )


async def finish(
    db: Db, deployment_id: UUID, shadow_id: UUID, status: ReplayStatus, error: str | None = None
) -> None:
    await db.execute(
        """UPDATE shadow_replays SET status = $3, error = $4, finished_at = now()
           WHERE deployment_id = $1 AND shadow_model_version_id = $2""",
        deployment_id,
        shadow_id,
        status.value,
        error,
    )


async def latest(db: Db, project_id: UUID, deployment_id: UUID) -> ShadowReplay | None:
    """The deployment's latest replay (of its current or an earlier shadow)."""
    row = await db.fetchrow(
        f"""SELECT {_COLUMNS} FROM shadow_replays
            WHERE project_id = $1 AND deployment_id = $2 ORDER BY started_at DESC LIMIT 1""",
        project_id,
        deployment_id,
    )
    return ShadowReplay.model_validate(dict(row)) if row else None
