"""Whether a model version can be served (services.common.servable), checked where it enters: when it
is registered, and once more when a served deployment is to use it (a 422 naming the field at fault,
rather than a 503 at the first predict)."""

from __future__ import annotations

from uuid import UUID

from services.common.db.repositories.base import Db
from services.common.domain.registry import ModelVersion, NewModelVersion
from services.common.http import ApiError
from services.common.servable import unservable_because
from services.common.storage import ObjectStore


async def check_registered(db: Db, store: ObjectStore, project_id: UUID, version: NewModelVersion) -> None:
    """422 on the body's field when a version registered with io settings cannot be served with them."""
    if version.io is None:
        return
    problem = await unservable_because(db, store, project_id, version)
    if problem is not None:
        raise ApiError(422, f"body.{problem.field}", str(problem))


async def check_served(db: Db, store: ObjectStore, version: ModelVersion) -> None:
    """422 on body.model_version_id when a served deployment is to use a version serving cannot."""
    problem = await unservable_because(db, store, version.project_id, version)
    if problem is not None:
        raise ApiError(
            422,
            "body.model_version_id",
            f"model version {version.id} cannot be served ({problem.field}): {problem}; "
            "deploy it monitoring_only, or register a version that can be",
        )
