"""Models registered straight into a project (the demo's, a loop's, the tests'): a labelmap found or created
by name, and a model version holding an ONNX file and the files it carries, created once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol
from uuid import UUID

from schemas.model_io import ModelIO
from schemas.model_version import MODEL_FILE
from schemas.object_keys import ObjectKind
from schemas.predictions import DetectionType
from services.common.db.repositories import registry
from services.common.db.repositories.base import Db
from services.common.domain.registry import ModelFile, NewModelVersion
from services.common.storage import ObjectStore


async def find_or_create_labelmap(db: Db, project_id: UUID, name: str, labels: list[str]) -> UUID:
    found = await registry.find_labelmap(db, project_id, name)
    return (found or await registry.create_labelmap(db, project_id, name, labels)).id


class OnnxModel(Protocol):
    """A model as an ONNX file and how serving calls it (a trained digits model, an architecture)."""

    @property
    def onnx(self) -> bytes: ...

    @property
    def io(self) -> ModelIO: ...


async def register_onnx_model(
    db: Db,
    store: ObjectStore,
    project_id: UUID,
    model_name: str,
    version: str,
    trained: OnnxModel,
    detection_type: DetectionType,
    labelmap_id: UUID | None,
    *,
    files: Mapping[str, bytes] | None = None,
    training: tuple[str, str | None] | None = None,
) -> UUID:
    """The model version holding `trained` as model.onnx and `files` beside it (each stored
    content-addressed), trained by `training` (its training_entrypoint and training_image) when given;
    created once."""
    found, _ = await registry.list_models(db, project_id, name=model_name, limit=1)
    model_id = (found[0] if found else await registry.create_model(db, project_id, model_name)).id
    # Stored first, every time: a local stack's object store may have lost its objects (an old stack's
    # stand-in forgot them at every restart), and training is deterministic, so the same bytes land under
    # the keys the version names.
    stored = []
    for name, data in {MODEL_FILE: trained.onnx, **(files or {})}.items():
        content_type = "application/onnx" if name == MODEL_FILE else "application/octet-stream"
        kept = await asyncio.to_thread(store.put_bytes, ObjectKind.MODELS, data, content_type)
        stored.append(ModelFile(name=name, object_key=kept.key, sha256=kept.sha256, size_bytes=kept.size))
    for existing in await registry.list_model_versions(db, project_id, model_id):
        if existing.version == version:
            return existing.id
    created = await registry.create_model_version(
        db,
        project_id,
        model_id,
        NewModelVersion(
            version=version,
            detection_type=detection_type,
            labelmap_id=labelmap_id,
            io=trained.io,
            training_entrypoint=training[0] if training else None,
            training_image=training[1] if training else None,
            files=stored,
        ),
    )
    return created.id
