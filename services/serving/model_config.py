"""A model version's ONNX file -> the Triton model that serves it: its name, and a config whose inputs
and outputs are the ONNX graph's signature (pure: no I/O)."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

from schemas.vocabulary import ModelBackend
from services.common.domain.model_signature import Signature

PYTHON_MODEL = Path(__file__).with_name("triton_onnx_model.py")


def triton_model_name(model_version_id: UUID) -> str:
    """One Triton model per model version: loading the same version twice is a no-op."""
    return f"mv-{model_version_id}"


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
