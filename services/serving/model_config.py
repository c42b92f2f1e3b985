"""A model version's ONNX file -> the Triton model that serves it: its name, and a config whose inputs
and outputs are read from the ONNX graph (pure: no I/O)."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import onnx
from pydantic import BaseModel, ConfigDict

from schemas.vocabulary import ModelBackend

# ONNX element types Triton can carry, as Triton's tensor datatypes.
_DATATYPES = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.STRING: "BYTES",
}
PYTHON_MODEL = Path(__file__).with_name("triton_onnx_model.py")


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    datatype: str  # Triton's: FP32, UINT8, INT64...
    shape: tuple[int, ...]  # -1 where the graph leaves the dimension open

    def config_entry(self) -> dict[str, object]:
        config_type = "TYPE_STRING" if self.datatype == "BYTES" else f"TYPE_{self.datatype}"
        return {"name": self.name, "data_type": config_type, "dims": list(self.shape)}


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True)

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def triton_model_name(model_version_id: UUID) -> str:
    """One Triton model per model version: loading the same version twice is a no-op."""
    return f"mv-{model_version_id}"


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    if tensor.elem_type not in _DATATYPES:
        raise ValueError(
            f"tensor {value.name!r} has ONNX element type {tensor.elem_type}, which Triton cannot carry"
        )
    shape = tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim
    )
    return TensorSpec(name=value.name, datatype=_DATATYPES[tensor.elem_type], shape=shape)


def read_signature(onnx_bytes: bytes) -> Signature:
    """The graph's real inputs (initializers listed as inputs are weights, not inputs) and outputs."""
    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ValueError(f"not an ONNX model: {exc}") from None
    weights = {initializer.name for initializer in model.graph.initializer}
    inputs = tuple(_spec(v) for v in model.graph.input if v.name not in weights)
    outputs = tuple(_spec(v) for v in model.graph.output)
    if not inputs or not outputs:
        raise ValueError("the ONNX graph must have at least one input and one output")
    return Signature(inputs=inputs, outputs=outputs)


def triton_config(name: str, signature: Signature, backend: ModelBackend) -> str:
    """The model config as JSON, for the model-repository extension's load with a config override.

    No batching dimension is declared (max_batch_size 0): the graph's own first dimension is the batch."""
    config: dict[str, object] = {
        "name": name,
        "backend": backend,
        "max_batch_size": 0,
        "input": [spec.config_entry() for spec in signature.inputs],
        "output": [spec.config_entry() for spec in signature.outputs],
    }
    if backend == ModelBackend.PYTHON:
        config["instance_group"] = [{"kind": "KIND_CPU", "count": 1}]
    return json.dumps(config)


def triton_files(onnx_bytes: bytes, backend: ModelBackend) -> dict[str, bytes]:
    """The version folder's files, as the load override names them (`file:<version>/<name>`)."""
    files = {"file:1/model.onnx": onnx_bytes}
    if backend == ModelBackend.PYTHON:
        files["file:1/model.py"] = PYTHON_MODEL.read_bytes()
    return files
