"""Processings: a command or container image, with the schema of its parameters, run as jobs."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from schemas.vocabulary import TargetType
from services.common.domain.jobs import Processing

from .base import Db

_COLUMNS = (
    "id, project_id, name, description, target_type, command, image, "
    "parameter_schema AS parameters_schema, created_at, created_by_key_id"
)


async def create_processing(
    db: Db,
    project_id: UUID,
    name: str,
    *,
    description: str = "",
    command: list[str] | None = None,
    image: str | None = None,
    parameters_schema: dict[str, Any] | None = None,
    target_type: TargetType = TargetType.MODEL_VERSION,
    created_by_key_id: UUID | None = None,
) -> Processing:
    row = await db.fetchrow(
        f"""INSERT INTO processings (project_id, name, description, target_type, command, image,
                parameter_schema, created_by_key_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}""",
        project_id,
        name,
        description,
        target_type.value,
        command,
        image,
        parameters_schema or {},
        created_by_key_id,
    )
    return Processing.model_validate(dict(row))


async def get_processing(db: Db, project_id: UUID, processing_id: UUID) -> Processing | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM processings WHERE project_id = $1 AND id = $2", project_id, processing_id
    )
    return Processing.model_validate(dict(row)) if row else None


async def list_processings(
    db: Db, project_id: UUID, *, limit: int = 50, offset: int = 0
) -> tuple[list[Processing], int]:
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM processings WHERE project_id = $1
            ORDER BY created_at, id LIMIT $2 OFFSET $3""",
        project_id,
        limit,
        offset,
    )
    total = await db.fetchval("SELECT count(*) FROM processings WHERE project_id = $1", project_id)
    return [Processing.model_validate(dict(r)) for r in rows], total
