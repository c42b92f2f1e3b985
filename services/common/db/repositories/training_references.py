"""Training-data references: which stored object holds a deployment's feature sample and outlier model."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from schemas.vocabulary import ReferenceStatus
from services.common.domain.deployments import TrainingReference

from . import objects
from .base import Db, transaction
from .deployments import set_reference_status


async def _locked_training_data(
    conn: asyncpg.Connection, project_id: UUID, deployment_id: UUID
) -> UUID | None:
    """The deployment's training dataset version, its row locked until the transaction ends."""
    return await conn.fetchval(
        "SELECT training_dataset_version_id FROM deployments WHERE project_id = $1 AND id = $2 FOR UPDATE",
        project_id,
        deployment_id,
    )


async def make_reference_ready(db: Db, reference: TrainingReference) -> bool:
    """Record the reference and make it the deployment's, ready, in one transaction; False (nothing
    changed) when the deployment's training data moved to another dataset version meanwhile. A replayed
    run finds its reference stored and changes nothing either."""
    async with transaction(db) as conn:
        current = await _locked_training_data(conn, reference.project_id, reference.deployment_id)
        if current != reference.dataset_version_id:
            return False
        inserted = await conn.fetchval(
            """INSERT INTO training_references (id, project_id, deployment_id, dataset_version_id,
                   job_run_id, object_key, detector, feature_names, training_size, sample_size)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING id""",
            reference.id,
            reference.project_id,
            reference.deployment_id,
            reference.dataset_version_id,
            reference.job_run_id,
            reference.object_key,
            reference.detector,
            reference.feature_names,
            reference.training_size,
            reference.sample_size,
        )
        if inserted is None:
            return False
        await objects.record(conn, reference.project_id, [reference.object_key])
        await set_reference_status(
            conn,
            reference.project_id,
            reference.deployment_id,
            ReferenceStatus.READY,
            reference_id=reference.id,
        )
    return True


async def fail_reference(
    db: Db, project_id: UUID, deployment_id: UUID, dataset_version_id: UUID, reason: str
) -> bool:
    """Mark the deployment's reference failed with the reason, unless its training data moved on."""
    async with transaction(db) as conn:
        if await _locked_training_data(conn, project_id, deployment_id) != dataset_version_id:
            return False
        await set_reference_status(conn, project_id, deployment_id, ReferenceStatus.FAILED, reason=reason)
    return True


async def ready_reference(db: Db, deployment_id: UUID) -> TrainingReference | None:
    """The deployment's reference when it is ready (the scoring stream knows only the deployment id)."""
    row = await db.fetchrow(
        """SELECT r.* FROM deployments d JOIN training_references r ON r.id = d.reference_id
           WHERE d.id = $1 AND d.reference_status = 'ready'""",
        deployment_id,
    )
    return TrainingReference.model_validate(dict(row)) if row else None
