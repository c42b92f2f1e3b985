"""Experiments: a training run's parameters, dataset versions and artifacts (the files it produced)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from schemas.triggers import TriggerFired
from schemas.vocabulary import ExperimentStatus
from services.common.domain.experiments import Artifact, Experiment

from . import objects
from .base import Db, NotFound, transaction

_SELECT = """
    SELECT e.*,
        COALESCE((SELECT jsonb_object_agg(d.alias, d.dataset_version_id)
                  FROM experiment_dataset_versions d WHERE d.experiment_id = e.id), '{}') AS dataset_versions,
        COALESCE((SELECT jsonb_agg(jsonb_build_object('id', a.id, 'name', a.name, 'object_key', a.object_key,
                          'sha256', a.sha256, 'size_bytes', a.size_bytes) ORDER BY a.name)
                  FROM experiment_artifacts a WHERE a.experiment_id = e.id), '[]') AS artifacts
    FROM experiments e WHERE e.project_id = $1"""


async def create_experiment(
    db: Db,
    project_id: UUID,
    name: str,
    *,
    base_model_version_id: UUID | None = None,
    parameters: dict[str, Any] | None = None,
    dataset_versions: dict[str, UUID] | None = None,
    training_request_id: str | None = None,
    training_trigger: TriggerFired | None = None,
) -> Experiment:
    """The experiment with its dataset versions, written together; `training_request_id` names the
    pipeline's training request it answers (one experiment per request)."""
    async with transaction(db) as conn:
        try:
            experiment_id = await conn.fetchval(
                """INSERT INTO experiments (project_id, name, base_model_version_id, parameters,
                       training_request_id, training_trigger)
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
                project_id,
                name,
                base_model_version_id,
                parameters or {},
                training_request_id,
                training_trigger.model_dump(mode="json") if training_trigger else None,
            )
            await conn.executemany(
                """INSERT INTO experiment_dataset_versions
                       (project_id, experiment_id, alias, dataset_version_id)
                   VALUES ($1, $2, $3, $4)""",
                [(project_id, experiment_id, alias, dv) for alias, dv in (dataset_versions or {}).items()],
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"a base model version or dataset version is not in this project: {exc}") from exc
        experiment = await get_experiment(conn, project_id, experiment_id)
    assert experiment is not None  # written by this transaction
    return experiment


async def get_experiment(db: Db, project_id: UUID, experiment_id: UUID) -> Experiment | None:
    row = await db.fetchrow(f"{_SELECT} AND e.id = $2", project_id, experiment_id)
    return Experiment.model_validate(dict(row)) if row else None


async def requested_experiment(db: Db, training_request_id: str) -> Experiment | None:
    """The experiment created for a pipeline training request, in whichever project it is."""
    project_id = await db.fetchval(
        "SELECT project_id FROM experiments WHERE training_request_id = $1", training_request_id
    )
    if project_id is None:
        return None
    row = await db.fetchrow(f"{_SELECT} AND e.training_request_id = $2", project_id, training_request_id)
    return Experiment.model_validate(dict(row)) if row else None


async def list_experiments(
    db: Db, project_id: UUID, *, name: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Experiment], int]:
    """A page of the project's experiments (the one named `name`, when given) and how many match."""
    rows = await db.fetch(
        f"{_SELECT} AND ($2::text IS NULL OR e.name = $2) ORDER BY e.created_at, e.id LIMIT $3 OFFSET $4",
        project_id,
        name,
        limit,
        offset,
    )
    total = await db.fetchval(
        "SELECT count(*) FROM experiments WHERE project_id = $1 AND ($2::text IS NULL OR name = $2)",
        project_id,
        name,
    )
    return [Experiment.model_validate(dict(r)) for r in rows], total


async def add_artifact(
    db: Db, project_id: UUID, experiment_id: UUID, *, name: str, object_key: str, sha256: str, size_bytes: int
) -> Artifact:
    """Record a file the experiment produced; the same name again replaces its content."""
    try:
        async with transaction(db) as conn:
            await objects.record(conn, project_id, [object_key])
            row = await conn.fetchrow(
                """INSERT INTO experiment_artifacts
                       (project_id, experiment_id, name, object_key, sha256, size_bytes)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (experiment_id, name) DO UPDATE
                       SET object_key = EXCLUDED.object_key, sha256 = EXCLUDED.sha256,
                           size_bytes = EXCLUDED.size_bytes
                   RETURNING id, name, object_key, sha256, size_bytes""",
                project_id,
                experiment_id,
                name,
                object_key,
                sha256,
                size_bytes,
            )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"experiment {experiment_id} is not in this project") from exc
    return Artifact.model_validate(dict(row))


async def set_status(db: Db, project_id: UUID, experiment_id: UUID, status: ExperimentStatus) -> None:
    """Move the experiment with its training run: running, then succeeded or failed (finished_at set)."""
    updated = await db.execute(
        """UPDATE experiments SET status = $3,
               finished_at = CASE WHEN $3 IN ('succeeded', 'failed') THEN now() END
           WHERE project_id = $1 AND id = $2""",
        project_id,
        experiment_id,
        status.value,
    )
    if updated == "UPDATE 0":
        raise NotFound(f"experiment {experiment_id} is not in this project")
