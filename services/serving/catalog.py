"""What serving reads from Postgres: every deployment's routing state, across projects (serving routes
by deployment id; the project only scopes the API key), and a labelmap's labels."""

from __future__ import annotations

from uuid import UUID

from services.common.db.repositories import deployments, registry
from services.common.db.repositories.base import Db

from .routing import DeploymentState


async def deployment_states(db: Db) -> list[DeploymentState]:
    return [
        DeploymentState(
            deployment_id=d.id,
            project_id=d.project_id,
            kind=d.kind,
            detection_type=d.detection_type,
            confidence_threshold=d.confidence_threshold,
            champion_id=d.champion_model_version_id,
            shadow_id=d.shadow_model_version_id,
        )
        for d in await deployments.all_deployments(db)
    ]


async def labels(db: Db, project_id: UUID, labelmap_id: UUID) -> tuple[str, ...] | None:
    labelmap = await registry.get_labelmap(db, project_id, labelmap_id)
    return tuple(labelmap.labels) if labelmap is not None else None
