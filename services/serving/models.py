"""A model version -> a model loaded on Triton that serving can call: the version's settings and
labelmap from Postgres, its ONNX file from the object store, the config from the graph."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

from schemas.predictions import DetectionType
from schemas.vocabulary import ModelBackend
from services.common.db.repositories.base import Db
from services.common.db.repositories.registry import get_model_version
from services.common.domain.model_signature import Unservable, check_servable, onnx_file, read_signature
from services.common.storage import ObjectStore

from . import catalog
from .model_config import triton_config, triton_files, triton_model_name
from .routing import ServedModel
from .triton import Triton, TritonUnavailable


@dataclass(frozen=True)
class _Described:
    model: ServedModel
    onnx_key: str
    config: str


class ModelLoader:
    """Describes model versions once (cached) and loads them on Triton whenever Triton lacks them."""

    def __init__(self, db: Db, store: ObjectStore, triton: Triton, backend: ModelBackend) -> None:
        self.db = db
        self.store = store
        self.triton = triton
        self.backend = backend
        self._described: dict[UUID, _Described] = {}

    async def _describe(
        self, project_id: UUID, model_version_id: UUID, detection_type: DetectionType
    ) -> _Described:
        version = await get_model_version(self.db, project_id, model_version_id)
        if version is None:
            raise Unservable("model_version_id", f"model version {model_version_id} is not in the project")
        if version.detection_type != detection_type:
            raise Unservable(
                "detection_type",
                f"it is a {version.detection_type} model; the deployment is {detection_type}",
            )
        if version.io is None:
            raise Unservable(
                "io", "it has no io settings (preprocessing and outputs), so it cannot be served"
            )
        file = onnx_file(version.files)
        onnx_bytes = await asyncio.to_thread(self.store.get_bytes, file.object_key)
        labels: tuple[str, ...] | None = None
        if version.labelmap_id is not None:
            labels = await catalog.labels(self.db, project_id, version.labelmap_id)
            if labels is None:
                raise Unservable("labelmap_id", f"its labelmap {version.labelmap_id} is missing")
        try:
            signature = read_signature(onnx_bytes)
        except ValueError as exc:
            raise Unservable("files", str(exc)) from None
        servable = check_servable(
            detection_type, version.io, signature, None if labels is None else len(labels)
        )
        if labels is None:  # no labelmap: classes are named by their index
            labels = tuple(str(i) for i in range(servable.classes or 0))
        name = triton_model_name(model_version_id)
        model = ServedModel(
            model_version_id=model_version_id,
            triton_name=name,
            io=version.io,
            labels=labels,
            output_format=servable.output_format,
            input=servable.input,
            outputs=servable.outputs,
        )
        return _Described(model, file.object_key, triton_config(name, signature, self.backend))

    async def ensure_loaded(
        self, project_id: UUID, model_version_id: UUID, detection_type: DetectionType
    ) -> ServedModel:
        """The version as a loaded Triton model. Raises Unservable for the version's own faults; anything
        else (Triton, Postgres or the store unreachable) is worth retrying."""
        described = self._described.get(model_version_id)
        if described is None:
            described = await self._describe(project_id, model_version_id, detection_type)
            self._described[model_version_id] = described
        name = described.model.triton_name
        if not await self.triton.model_ready(name):
            # A load sent while Triton is still starting can crash it (seen with 2.51): wait for ready.
            if not await self.triton.server_ready():
                raise TritonUnavailable("Triton is unreachable: it is not ready yet")
            onnx_bytes = await asyncio.to_thread(self.store.get_bytes, described.onnx_key)
            await self.triton.load(name, described.config, triton_files(onnx_bytes, self.backend))
        return described.model

    async def model_ready(self, model: ServedModel) -> bool:
        return await self.triton.model_ready(model.triton_name)

    async def unload(self, name: str) -> None:
        await self.triton.unload(name)
