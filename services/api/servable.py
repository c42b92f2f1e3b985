"""Whether a model version can be served, checked where it enters: its io settings against its ONNX
graph when it is registered, and once more when a served deployment is to use it (a 422 naming the
field at fault, rather than a 503 at the first predict)."""

from __future__ import annotations

import asyncio
from uuid import UUID

from services.common.db.repositories import registry
from services.common.db.repositories.base import Db
from services.common.domain.model_signature import Unservable, check_servable, onnx_file, read_signature
from services.common.domain.registry import ModelVersion, NewModelVersion
from services.common.http import ApiError
from services.common.storage import ObjectStore


async def unservable_because(
    db: Db, store: ObjectStore, project_id: UUID, version: NewModelVersion
) -> Unservable | None:
    """Why the version cannot be served (None: it can); a version without io is not meant to be."""
    if version.io is None:
        return Unservable("io", "it has no io settings (preprocessing and outputs), so it cannot be served")
    labels = None
    if version.labelmap_id is not None:
        labelmap = await registry.get_labelmap(db, project_id, version.labelmap_id)
        labels = len(labelmap.labels) if labelmap else None
    try:
        data = await asyncio.to_thread(store.get_bytes, onnx_file(version.files).object_key)
        try:
            signature = read_signature(data)
        except ValueError as exc:
            raise Unservable("files", str(exc)) from None
        check_servable(version.detection_type, version.io, signature, labels)
    except Unservable as exc:
        return exc
    return None


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
