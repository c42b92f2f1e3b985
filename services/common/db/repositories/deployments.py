"""Deployments: champion and shadow, threshold, training data and its reference, and the pipeline
settings (feedback loop, continuous training, continuous deployment)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from schemas.events import DeploymentKind
from schemas.predictions import DetectionType
from schemas.vocabulary import DeploymentPolicy, ReferenceStatus
from services.common.domain.deployments import ContinuousTraining, Deployment

from .base import Conflict, Db, NotFound, transaction

_FROM = """
    SELECT d.*,
        COALESCE((SELECT array_agg(f.dataset_version_id ORDER BY f.dataset_version_id)
                  FROM deployment_feedback_dataset_versions f WHERE f.deployment_id = d.id), '{}')
            AS feedback_dataset_version_ids,
        COALESCE((SELECT jsonb_object_agg(c.alias, c.dataset_version_id)
                  FROM deployment_ct_dataset_versions c WHERE c.deployment_id = d.id), '{}')
            AS ct_dataset_versions
    FROM deployments d"""
_SELECT = f"{_FROM} WHERE d.project_id = $1"


def _deployment(row: asyncpg.Record) -> Deployment:
    values = dict(row)
    values["continuous_training"] = ContinuousTraining(
        project_id=values.pop("ct_project_id"),
        dataset_versions=values.pop("ct_dataset_versions"),
        parameters=values.pop("ct_parameters"),
        trigger_threshold=values.pop("ct_trigger_threshold"),
        trigger_policy=values.pop("ct_trigger_policy"),
        active=values.pop("ct_active"),
    )
    return Deployment.model_validate(values)


async def get_deployment(db: Db, project_id: UUID, deployment_id: UUID) -> Deployment | None:
    row = await db.fetchrow(f"{_SELECT} AND d.id = $2", project_id, deployment_id)
    return _deployment(row) if row else None


async def list_deployments(db: Db, project_id: UUID) -> list[Deployment]:
    rows = await db.fetch(f"{_SELECT} ORDER BY d.created_at, d.id", project_id)
    return [_deployment(r) for r in rows]


async def all_deployments(db: Db) -> list[Deployment]:
    """Every project's deployments, for serving (which routes by deployment id)."""
    rows = await db.fetch(f"{_FROM} ORDER BY d.created_at, d.id")
    return [_deployment(r) for r in rows]


async def project_of(db: Db, deployment_id: UUID) -> UUID | None:
    """The deployment's project, for consumers of events (which carry only the deployment id)."""
    return await db.fetchval("SELECT project_id FROM deployments WHERE id = $1", deployment_id)


async def find_deployment(db: Db, deployment_id: UUID) -> Deployment | None:
    """The deployment in whichever project it is, for consumers of events (which carry only its id)."""
    project_id = await project_of(db, deployment_id)
    return await get_deployment(db, project_id, deployment_id) if project_id is not None else None


async def create_deployment(
    db: Db,
    project_id: UUID,
    name: str,
    *,
    kind: DeploymentKind,
    detection_type: DetectionType,
    champion_model_version_id: UUID | None = None,
    confidence_threshold: float = 0.0,
) -> Deployment:
    try:
        deployment_id = await db.fetchval(
            """INSERT INTO deployments
                   (project_id, name, kind, detection_type, champion_model_version_id, confidence_threshold)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            project_id,
            name,
            DeploymentKind(kind).value,
            DetectionType(detection_type).value,
            champion_model_version_id,
            confidence_threshold,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"model version {champion_model_version_id} is not in this project") from exc
    return await _get(db, project_id, deployment_id)


async def _get(db: Db, project_id: UUID, deployment_id: UUID) -> Deployment:
    deployment = await get_deployment(db, project_id, deployment_id)
    if deployment is None:
        raise NotFound(f"deployment {deployment_id} is not in this project")
    return deployment


async def _update(db: Db, project_id: UUID, deployment_id: UUID, assignments: str, *args: Any) -> Deployment:
    """Run `UPDATE deployments SET <assignments>` ($3... are args) on one of the project's deployments."""
    assignments = ", ".join(filter(None, ("updated_at = now()", assignments)))
    try:
        status = await db.execute(
            f"UPDATE deployments SET {assignments} WHERE project_id = $1 AND id = $2",
            project_id,
            deployment_id,
            *args,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"a referenced model or dataset version is not in this project: {exc}") from exc
    except asyncpg.CheckViolationError as exc:
        raise Conflict(str(exc)) from exc
    if status != "UPDATE 1":
        raise NotFound(f"deployment {deployment_id} is not in this project")
    return await _get(db, project_id, deployment_id)


async def set_champion(db: Db, project_id: UUID, deployment_id: UUID, model_version_id: UUID) -> Deployment:
    return await _update(db, project_id, deployment_id, "champion_model_version_id = $3", model_version_id)


async def set_shadow(
    db: Db, project_id: UUID, deployment_id: UUID, model_version_id: UUID | None
) -> Deployment:
    """Deploy `model_version_id` as shadow, or remove the shadow with None."""
    return await _update(db, project_id, deployment_id, "shadow_model_version_id = $3", model_version_id)


async def promote_shadow(db: Db, project_id: UUID, deployment_id: UUID) -> Deployment:
    # The row stays locked from the check to the update, so a concurrent shadow removal cannot leave
    # the deployment without a champion.
    async with transaction(db) as conn:
        row = await conn.fetchrow(
            "SELECT shadow_model_version_id FROM deployments WHERE project_id = $1 AND id = $2 FOR UPDATE",
            project_id,
            deployment_id,
        )
        if row is None:
            raise NotFound(f"deployment {deployment_id} is not in this project")
        if row["shadow_model_version_id"] is None:
            raise Conflict(f"deployment {deployment_id} has no shadow model to promote")
        return await _update(
            conn,
            project_id,
            deployment_id,
            "champion_model_version_id = shadow_model_version_id, shadow_model_version_id = NULL",
        )


async def promote_watching(conn: asyncpg.Connection, project_id: UUID, deployment_id: UUID) -> Deployment:
    """The promotion gate's promotion (in the caller's transaction, the row locked): the shadow becomes
    champion and the champion shadow, watched for a rollback."""
    return await _update(
        conn,
        project_id,
        deployment_id,
        "champion_model_version_id = shadow_model_version_id, shadow_model_version_id = "
        "champion_model_version_id, gate_watched_model_version_id = champion_model_version_id",
    )


async def roll_back(conn: asyncpg.Connection, project_id: UUID, deployment_id: UUID) -> Deployment:
    """The gate undoing its promotion: the watched previous champion is champion again, with no shadow."""
    return await _update(
        conn,
        project_id,
        deployment_id,
        "champion_model_version_id = shadow_model_version_id, shadow_model_version_id = NULL, "
        "gate_watched_model_version_id = NULL",
    )


async def end_watch(conn: asyncpg.Connection, project_id: UUID, deployment_id: UUID) -> Deployment:
    """The promotion held through the watch: the previous champion leaves the shadow role."""
    return await _update(
        conn,
        project_id,
        deployment_id,
        "shadow_model_version_id = NULL, gate_watched_model_version_id = NULL",
    )


async def set_confidence_threshold(
    db: Db, project_id: UUID, deployment_id: UUID, threshold: float
) -> Deployment:
    return await _update(db, project_id, deployment_id, "confidence_threshold = $3", threshold)


async def set_training_data(
    db: Db, project_id: UUID, deployment_id: UUID, dataset_version_id: UUID
) -> Deployment:
    """Point the deployment at its training data; its reference is computed anew."""
    return await _update(
        db,
        project_id,
        deployment_id,
        "training_dataset_version_id = $3, reference_status = 'computing', reference_reason = NULL, "
        "reference_id = NULL",
        dataset_version_id,
    )


async def set_reference_status(
    db: Db,
    project_id: UUID,
    deployment_id: UUID,
    status: ReferenceStatus,
    *,
    reason: str | None = None,
    reference_id: UUID | None = None,
) -> Deployment:
    """Record the reference job's outcome: ready with its id, or failed with a reason."""
    return await _update(
        db,
        project_id,
        deployment_id,
        "reference_status = $3, reference_reason = $4, reference_id = $5",
        ReferenceStatus(status).value,
        reason,
        reference_id,
    )


async def set_feedback_loop(
    db: Db, project_id: UUID, deployment_id: UUID, dataset_version_ids: list[UUID]
) -> Deployment:
    """Replace the dataset versions that reviewed predictions may be submitted to."""
    async with transaction(db) as conn:
        await _update(conn, project_id, deployment_id, "")
        await conn.execute(
            "DELETE FROM deployment_feedback_dataset_versions WHERE project_id = $1 AND deployment_id = $2",
            project_id,
            deployment_id,
        )
        try:
            await conn.executemany(
                """INSERT INTO deployment_feedback_dataset_versions
                       (project_id, deployment_id, dataset_version_id)
                   VALUES ($1, $2, $3)""",
                [(project_id, deployment_id, dv) for dv in dict.fromkeys(dataset_version_ids)],
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"a dataset version is not in this project: {exc}") from exc
        return await _get(conn, project_id, deployment_id)


async def configure_continuous_training(
    db: Db, project_id: UUID, deployment_id: UUID, settings: ContinuousTraining
) -> Deployment:
    async with transaction(db) as conn:
        deployment = await _update(
            conn,
            project_id,
            deployment_id,
            "ct_project_id = $3, ct_parameters = $4, ct_trigger_threshold = $5, ct_active = $6, "
            "ct_trigger_policy = $7",
            settings.project_id,
            settings.parameters,
            settings.trigger_threshold,
            settings.active,
            settings.trigger_policy.model_dump(mode="json", exclude_defaults=True),
        )
        await conn.execute(
            "DELETE FROM deployment_ct_dataset_versions WHERE project_id = $1 AND deployment_id = $2",
            project_id,
            deployment_id,
        )
        try:
            await conn.executemany(
                """INSERT INTO deployment_ct_dataset_versions
                       (project_id, deployment_id, alias, dataset_version_id)
                   VALUES ($1, $2, $3, $4)""",
                [(project_id, deployment_id, alias, dv) for alias, dv in settings.dataset_versions.items()],
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"a dataset version is not in this project: {exc}") from exc
        return await _get(conn, project_id, deployment.id)


async def configure_continuous_deployment(
    db: Db, project_id: UUID, deployment_id: UUID, policy: DeploymentPolicy, *, active: bool
) -> Deployment:
    return await _update(
        db,
        project_id,
        deployment_id,
        "cd_policy = $3, cd_active = $4",
        DeploymentPolicy(policy).value,
        active,
    )


async def attach_feedback_dataset_version(
    db: Db, project_id: UUID, deployment_id: UUID, dataset_version_id: UUID
) -> Deployment:
    """Add one dataset version to the feedback loop (already attached: nothing changes)."""
    async with transaction(db) as conn:
        await _update(conn, project_id, deployment_id, "")
        try:
            await conn.execute(
                """INSERT INTO deployment_feedback_dataset_versions
                       (project_id, deployment_id, dataset_version_id)
                   VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
                project_id,
                deployment_id,
                dataset_version_id,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"dataset version {dataset_version_id} is not in this project") from exc
        return await _get(conn, project_id, deployment_id)


async def detach_feedback_dataset_version(
    db: Db, project_id: UUID, deployment_id: UUID, dataset_version_id: UUID
) -> Deployment:
    """Remove one dataset version from the feedback loop; NotFound when it was not attached."""
    async with transaction(db) as conn:
        status = await conn.execute(
            """DELETE FROM deployment_feedback_dataset_versions
               WHERE project_id = $1 AND deployment_id = $2 AND dataset_version_id = $3""",
            project_id,
            deployment_id,
            dataset_version_id,
        )
        if status != "DELETE 1":
            await _get(conn, project_id, deployment_id)  # NotFound for the deployment itself first
            raise NotFound(f"dataset version {dataset_version_id} is not in this deployment's feedback loop")
        return await _update(conn, project_id, deployment_id, "")


async def lock_deployment(conn: asyncpg.Connection, project_id: UUID, deployment_id: UUID) -> Deployment:
    """The deployment, its row locked until the caller's transaction ends (changes that read it first)."""
    found = await conn.fetchval(
        "SELECT id FROM deployments WHERE project_id = $1 AND id = $2 FOR UPDATE", project_id, deployment_id
    )
    if found is None:
        raise NotFound(f"deployment {deployment_id} is not in this project")
    return await _get(conn, project_id, deployment_id)
