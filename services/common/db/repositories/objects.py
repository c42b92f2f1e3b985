"""Which project may reference which object (migration 0007): the object store is content-addressed and
shared, so ownership lives here. Every function that inserts a row naming an object records the object
for the row's project; the routes that take a key from a caller check it with `owned` first."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from .base import Db


def recording(project_ids: str, keys: str) -> str:
    """The insert recording the objects of two array parameters (project ids and keys, `$1` and `$2` say),
    for a statement that writes them together with its own rows."""
    return f"""INSERT INTO project_objects (project_id, object_key)
        SELECT DISTINCT * FROM unnest({project_ids}::uuid[], {keys}::text[]) ON CONFLICT DO NOTHING"""


async def record(db: Db, project_id: UUID, keys: Iterable[str]) -> None:
    """The objects are the project's from now on (recording one again changes nothing)."""
    keys = list(dict.fromkeys(keys))
    if keys:
        await db.execute(recording("$1", "$2"), [project_id] * len(keys), keys)


async def owned(db: Db, project_id: UUID, keys: Iterable[str]) -> set[str]:
    """Those of `keys` the project uploaded or the platform wrote for it."""
    rows = await db.fetch(
        "SELECT object_key FROM project_objects WHERE project_id = $1 AND object_key = ANY($2::text[])",
        project_id,
        list(set(keys)),
    )
    return {row["object_key"] for row in rows}
