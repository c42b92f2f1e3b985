"""Drift reports: the scoring stream's KS tests of a deployment's recent predictions, kept for the API."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from schemas.events import DriftReported
from services.common.domain.scoring import DriftReport

from .base import Db, NotFound


async def insert_drift_report(db: Db, project_id: UUID, report: DriftReported) -> bool:
    """Store the report; False when its event id is stored already (a replay), which changes nothing."""
    try:
        status = await db.execute(
            """INSERT INTO drift_reports (event_id, project_id, deployment_id, reference_id, window_start,
                   window_end, window_size, reference_size, correction, alpha, features, drift_detected)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING""",
            report.event_id,
            project_id,
            report.deployment_id,
            report.reference_id,
            report.window_start,
            report.window_end,
            report.window_size,
            report.reference_size,
            report.correction.value,
            report.alpha,
            [feature.model_dump(mode="json") for feature in report.features],
            report.drift_detected,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"deployment {report.deployment_id} is not in this project") from exc
    return status == "INSERT 0 1"


async def list_drift_reports(
    db: Db, project_id: UUID, deployment_id: UUID, *, limit: int = 100, offset: int = 0
) -> list[DriftReport]:
    """A deployment's reports, newest window first."""
    rows = await db.fetch(
        """SELECT * FROM drift_reports WHERE project_id = $1 AND deployment_id = $2
           ORDER BY window_end DESC, event_id LIMIT $3 OFFSET $4""",
        project_id,
        deployment_id,
        limit,
        offset,
    )
    return [DriftReport.model_validate(dict(r)) for r in rows]


async def drift_reports_between(
    db: Db,
    project_id: UUID,
    deployment_id: UUID,
    start: datetime,
    end: datetime,
    *,
    flagged_only: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[DriftReport], int]:
    """The reports whose window ended in [start, end), oldest first, and how many there are in all;
    `flagged_only`: those that detected drift."""
    where = """project_id = $1 AND deployment_id = $2 AND window_end >= $3 AND window_end < $4
               AND (drift_detected OR NOT $5)"""
    args = (project_id, deployment_id, start, end, flagged_only)
    rows = await db.fetch(
        f"SELECT * FROM drift_reports WHERE {where} ORDER BY window_end, event_id LIMIT $6 OFFSET $7",
        *args,
        limit,
        offset,
    )
    total = await db.fetchval(f"SELECT count(*) FROM drift_reports WHERE {where}", *args)
    return [DriftReport.model_validate(dict(r)) for r in rows], total
