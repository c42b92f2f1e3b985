"""Projects and their API keys. Only the key's sha256 is stored: keys are 256-bit random secrets,
so a fast hash is enough (no password stretching needed) and lets a lookup use the unique index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from schemas.vocabulary import Scope
from services.common.domain.projects import KEY_PREFIX, ApiKey, Project, hash_api_key, new_api_key

from .base import Db


async def create_project(db: Db, name: str) -> Project:
    row = await db.fetchrow("INSERT INTO projects (name) VALUES ($1) RETURNING *", name)
    return Project.model_validate(dict(row))


async def get_project(db: Db, project_id: UUID) -> Project | None:
    row = await db.fetchrow("SELECT * FROM projects WHERE id = $1", project_id)
    return Project.model_validate(dict(row)) if row else None


async def find_project(db: Db, name: str) -> Project | None:
    """The project of that name."""
    row = await db.fetchrow("SELECT * FROM projects WHERE name = $1", name)
    return Project.model_validate(dict(row)) if row else None


async def create_api_key(db: Db, project_id: UUID, name: str, scopes: list[Scope]) -> tuple[ApiKey, str]:
    """The key's record and its secret, which is shown once and never stored."""
    secret = new_api_key()
    row = await db.fetchrow(
        """INSERT INTO api_keys (project_id, name, key_hash, key_prefix, scopes)
           VALUES ($1, $2, $3, $4, $5) RETURNING *""",
        project_id,
        name,
        hash_api_key(secret),
        secret[: len(KEY_PREFIX) + 6],
        sorted({Scope(s).value for s in scopes}),
    )
    return ApiKey.model_validate(dict(row)), secret


LAST_USE_RESOLUTION = timedelta(minutes=1)


async def authenticate(db: Db, secret: str) -> ApiKey | None:
    """The live key matching `secret`, or None. Its last use is recorded at most once a minute, so the
    concurrent requests of one key read its row instead of queueing to write it."""
    row = await db.fetchrow(
        "SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", hash_api_key(secret)
    )
    if row is None:
        return None
    if row["last_used_at"] is None or datetime.now(UTC) - row["last_used_at"] > LAST_USE_RESOLUTION:
        row = await db.fetchrow(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING *",
            row["id"],
        )
    return ApiKey.model_validate(dict(row)) if row else None


async def list_api_keys(db: Db, project_id: UUID) -> list[ApiKey]:
    rows = await db.fetch("SELECT * FROM api_keys WHERE project_id = $1 ORDER BY created_at", project_id)
    return [ApiKey.model_validate(dict(r)) for r in rows]


async def revoke_api_key(db: Db, project_id: UUID, key_id: UUID) -> bool:
    status = await db.execute(
        """UPDATE api_keys SET revoked_at = now()
           WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL""",
        project_id,
        key_id,
    )
    return status == "UPDATE 1"


async def set_api_key_scopes(db: Db, project_id: UUID, key_id: UUID, scopes: list[Scope]) -> ApiKey | None:
    """The live key with its new scopes; None when the project has no such live key."""
    row = await db.fetchrow(
        """UPDATE api_keys SET scopes = $3
           WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING *""",
        project_id,
        key_id,
        sorted({Scope(s).value for s in scopes}),
    )
    return ApiKey.model_validate(dict(row)) if row else None
