"""What serving reads from Postgres: every deployment's routing state, across projects (serving routes
by deployment id; the project only scopes the API key), and a labelmap's labels."""

from __future__ import annotations

from uuid import UUID

from schemas.events import DeploymentKind
from schemas.predictions import DetectionType
from services.common.db.repositories.base import Db

from .routing import DeploymentState


async def deployment_states(db: Db) -> list[DeploymentState]:
    rows = await db.fetch(
        """SELECT id, project_id, kind, detection_type, confidence_threshold,
                  champion_model_version_id, shadow_model_version_id
           FROM deployments ORDER BY created_at, id"""
    )
    return [
        DeploymentState(
            deployment_id=row["id"],
            project_id=row["project_id"],
            kind=DeploymentKind(row["kind"]),
            detection_type=DetectionType(row["detection_type"]),
            confidence_threshold=row["confidence_threshold"],
            champion_id=row["champion_model_version_id"],
            shadow_id=row["shadow_model_version_id"],
        )
        for row in rows
    ]


async def labels(db: Db, project_id: UUID, labelmap_id: UUID) -> tuple[str, ...] | None:
    found = await db.fetchval(
        "SELECT labels FROM labelmaps WHERE project_id = $1 AND id = $2", project_id, labelmap_id
    )
    return tuple(found) if found is not None else None
