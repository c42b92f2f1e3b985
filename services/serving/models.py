"""A model version -> a model loaded on Triton that serving can call: the version's settings and
labelmap from Postgres, its ONNX file from the object store, the config from the graph."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

from schemas.model_io import ModelIO
from schemas.model_version import MODEL_FILE
from schemas.predictions import DetectionType
from schemas.vocabulary import ModelBackend
from services.common.db.repositories.base import Db
from services.common.db.repositories.registry import get_model_version
from services.common.domain.registry import ModelFile
from services.common.storage import ObjectStore

from . import catalog
from .model_config import Signature, read_signature, triton_config, triton_files, triton_model_name
from .postprocess import output_names
from .routing import ServedModel
from .triton import Triton, TritonUnavailable


class Unservable(ValueError):
    """The model version cannot be served as it is (no io settings, no ONNX file, wrong tensors)."""


def onnx_file(files: list[ModelFile]) -> ModelFile:
    """The file named model.onnx, else the only .onnx file."""
    named = [f for f in files if f.name == MODEL_FILE]
    onnx_files = named or [f for f in files if f.name.lower().endswith(".onnx")]
    if len(onnx_files) != 1:
        raise Unservable(
            f"it needs one ONNX file (named {MODEL_FILE}, or the only *.onnx); "
            f"it has {[f.name for f in files]}"
        )
    return onnx_files[0]


def check_input(signature: Signature, io: ModelIO) -> None:
    """The graph takes one image batch whose fixed dimensions match the io settings."""
    if len(signature.inputs) != 1:
        raise Unservable(f"the graph must take one input; it takes {[i.name for i in signature.inputs]}")
    spec = signature.inputs[0]
    channels = 1 if io.color == "gray" else 3
    expected = (
        (1, channels, io.height, io.width) if io.layout == "NCHW" else (1, io.height, io.width, channels)
    )
    if len(spec.shape) != 4 or any(d not in (-1, e) for d, e in zip(spec.shape, expected, strict=True)):
        raise Unservable(
            f"input {spec.name!r} has shape {list(spec.shape)}; io settings make {list(expected)}"
        )
    wanted = "UINT8" if io.dtype == "uint8" else "FP32"
    if spec.datatype != wanted:
        raise Unservable(f"input {spec.name!r} is {spec.datatype}; io settings make {wanted}")


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
            raise Unservable(f"model version {model_version_id} is not in the deployment's project")
        if version.detection_type != detection_type:
            raise Unservable(f"it is a {version.detection_type} model; the deployment is {detection_type}")
        if version.io is None:
            raise Unservable("it has no io settings (preprocessing and outputs), so it cannot be served")
        file = onnx_file(version.files)
        onnx_bytes = await asyncio.to_thread(self.store.get_bytes, file.object_key)
        try:
            signature = read_signature(onnx_bytes)
            check_input(signature, version.io)
            outputs = output_names(detection_type, version.io, [o.name for o in signature.outputs])
        except ValueError as exc:
            raise Unservable(str(exc)) from None
        if version.labelmap_id is not None:
            labels = await catalog.labels(self.db, project_id, version.labelmap_id)
            if labels is None:
                raise Unservable(f"its labelmap {version.labelmap_id} is missing")
        else:  # no labelmap: classes are named by their index
            classes = signature.outputs[[o.name for o in signature.outputs].index(outputs[0])].shape[-1]
            labels = tuple(str(i) for i in range(max(classes, 0)))
        name = triton_model_name(model_version_id)
        model = ServedModel(
            model_version_id=model_version_id,
            triton_name=name,
            io=version.io,
            labels=labels,
            input=signature.inputs[0],
            outputs=outputs,
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
