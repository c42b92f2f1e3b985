"""Whether a model version can be served: its io settings against its ONNX graph and labelmap. The api
asks when a version is registered or deployed, the pipeline before its continuous deployment serves an
exported version; serving checks the same when it loads one."""

from __future__ import annotations

import asyncio
from uuid import UUID

from services.common.db.repositories import registry
from services.common.db.repositories.base import Db
from services.common.domain.model_signature import Unservable, check_servable, onnx_file, read_signature
from services.common.domain.registry import NewModelVersion
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
