"""The promotion gate's decisions, one row per DeploymentUpdated it published (keyed by its event id)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from schemas.events import GateDecision
from schemas.vocabulary import GateReason
from services.common.domain.deployments import RecordedGateDecision

from .base import Db


async def record(
    conn: asyncpg.Connection,
    project_id: UUID,
    deployment_id: UUID,
    champion_id: UUID,
    shadow_id: UUID,
    event_id: UUID,
    decision: GateDecision,
) -> bool:
    """Store the decision; False when it was stored before (a replay)."""
    status = await conn.execute(
        """INSERT INTO gate_decisions (id, project_id, deployment_id, champion_model_version_id,
                                       shadow_model_version_id, outcome, reason, decision)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING""",
        event_id,
        project_id,
        deployment_id,
        champion_id,
        shadow_id,
        decision.outcome.value,
        decision.reason.value,
        decision.model_dump(mode="json"),
    )
    return status == "INSERT 0 1"


async def latest_reason(db: Db, deployment_id: UUID, champion_id: UUID, shadow_id: UUID) -> GateReason | None:
    """The reason of the latest decision about these two roles, so an unchanged one is not repeated."""
    reason = await db.fetchval(
        """SELECT reason FROM gate_decisions
           WHERE deployment_id = $1 AND champion_model_version_id = $2 AND shadow_model_version_id = $3
           ORDER BY decided_at DESC, id LIMIT 1""",
        deployment_id,
        champion_id,
        shadow_id,
    )
    return GateReason(reason) if reason is not None else None


async def list_decisions(
    db: Db, project_id: UUID, deployment_id: UUID, limit: int
) -> list[RecordedGateDecision]:
    """The deployment's latest decisions, newest first."""
    rows = await db.fetch(
        """SELECT id, champion_model_version_id, shadow_model_version_id, decision, decided_at
           FROM gate_decisions WHERE project_id = $1 AND deployment_id = $2
           ORDER BY decided_at DESC, id LIMIT $3""",
        project_id,
        deployment_id,
        limit,
    )
    return [RecordedGateDecision.model_validate(dict(r)) for r in rows]
