"""Deleting what is no longer wanted, only when nothing still uses it: each delete locks its row, looks
for what refers to it in the same transaction, and either removes it or raises Conflict naming every
user. Rows a delete owns go with it (ON DELETE CASCADE: a deployment's predictions, drift reports and
references; a model version's files); objects in S3 stay, since their content may be shared."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from services.common.domain.deployments import Deployment

from .base import Conflict, NotFound
from .deployments import lock_deployment

# A job whose latest run is pending or running: what it points at cannot go from under it.
_ACTIVE_JOBS = """SELECT j.id FROM jobs j
    WHERE j.project_id = $1 AND {where}
      AND (SELECT r.status FROM job_runs r WHERE r.job_id = j.id ORDER BY r.attempt DESC LIMIT 1)
          IN ('pending', 'running')
    ORDER BY j.created_at"""


def _refuse(what: str, users: list[str]) -> None:
    if users:
        raise Conflict(f"{what} is still used by {'; '.join(users)}")


async def _locked(conn: asyncpg.Connection, table: str, project_id: UUID, row_id: UUID, what: str) -> None:
    if (
        await conn.fetchval(
            f"SELECT 1 FROM {table} WHERE project_id = $1 AND id = $2 FOR UPDATE", project_id, row_id
        )
        is None
    ):
        raise NotFound(f"{what} not found")


async def _active_jobs(conn: asyncpg.Connection, project_id: UUID, where: str, *args: object) -> list[str]:
    rows = await conn.fetch(_ACTIVE_JOBS.format(where=where), project_id, *args)
    return [f"active job {r['id']}" for r in rows]


async def delete_deployment(conn: asyncpg.Connection, project_id: UUID, deployment_id: UUID) -> Deployment:
    """Delete the deployment with its predictions and reports, unless a job on it is still active;
    answers the deployment as it was (for its DELETED event)."""
    deployment = await lock_deployment(conn, project_id, deployment_id)
    _refuse(
        f"deployment {deployment.name!r}",
        await _active_jobs(
            conn, project_id, "j.target_type = 'deployment' AND j.target_id = $2", deployment_id
        ),
    )
    await conn.execute("DELETE FROM deployments WHERE project_id = $1 AND id = $2", project_id, deployment_id)
    return deployment


async def delete_model_version(conn: asyncpg.Connection, project_id: UUID, model_version_id: UUID) -> None:
    """Delete a model version no deployment serves, no prediction was made by, no experiment starts
    from, no active job runs on."""
    await _locked(conn, "model_versions", project_id, model_version_id, "model version")
    users = [
        f"deployment {r['name']!r} ({r['role']})"
        for r in await conn.fetch(
            """SELECT name,
                      CASE WHEN champion_model_version_id = $2 THEN 'champion' ELSE 'shadow' END AS role
               FROM deployments
               WHERE project_id = $1 AND $2 IN (champion_model_version_id, shadow_model_version_id)
               ORDER BY name""",
            project_id,
            model_version_id,
        )
    ]
    predictions = await conn.fetchval(
        """SELECT count(*) FROM predicted_assets WHERE project_id = $1
           AND (champion_model_version_id = $2 OR shadow_model_version_id = $2)""",
        project_id,
        model_version_id,
    )
    if predictions:
        users.append(f"{predictions} recorded predictions")
    users += [
        f"experiment {r['name']!r}"
        for r in await conn.fetch(
            "SELECT name FROM experiments WHERE project_id = $1 AND base_model_version_id = $2 ORDER BY name",
            project_id,
            model_version_id,
        )
    ]
    users += await _active_jobs(
        conn, project_id, "j.target_type = 'model_version' AND j.target_id = $2", model_version_id
    )
    _refuse("model version", users)
    await conn.execute(
        "DELETE FROM model_versions WHERE project_id = $1 AND id = $2", project_id, model_version_id
    )


async def delete_processing(conn: asyncpg.Connection, project_id: UUID, processing_id: UUID) -> None:
    """Delete a processing no job ran (its jobs keep pointing at it, for their history)."""
    await _locked(conn, "processings", project_id, processing_id, "processing")
    jobs = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE project_id = $1 AND processing_id = $2", project_id, processing_id
    )
    _refuse("processing", [f"{jobs} jobs"] if jobs else [])
    await conn.execute("DELETE FROM processings WHERE project_id = $1 AND id = $2", project_id, processing_id)


async def delete_asset(
    conn: asyncpg.Connection, project_id: UUID, dataset_version_id: UUID, asset_id: UUID
) -> None:
    """Delete a dataset asset with its annotations, unless a submitted prediction became it or an active
    job runs on its dataset version."""
    row = await conn.fetchval(
        "SELECT 1 FROM assets WHERE project_id = $1 AND dataset_version_id = $2 AND id = $3 FOR UPDATE",
        project_id,
        dataset_version_id,
        asset_id,
    )
    if row is None:
        raise NotFound("asset not found")
    users = [
        f"submitted prediction {r['prediction_id']}"
        for r in await conn.fetch(
            "SELECT prediction_id FROM predicted_assets WHERE project_id = $1 AND submitted_asset_id = $2",
            project_id,
            asset_id,
        )
    ]
    users += await _active_jobs(
        conn, project_id, "j.target_type = 'dataset_version' AND j.target_id = $2", dataset_version_id
    )
    _refuse("asset", users)
    await conn.execute("DELETE FROM assets WHERE project_id = $1 AND id = $2", project_id, asset_id)
