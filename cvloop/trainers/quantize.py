"""A conversion processing: weight-only int8 quantization of the target model version, run by the job
runner inside a job workspace:

    CVLOOP_JOB_DIR=<workspace> python -m cvloop.trainers.quantize

It reads base_model/model.onnx and parameters.json and writes outputs/model.onnx (the files of the new
model version: same inputs, outputs, labelmap and io) and outputs/metrics.json (sizes, tensors quantized).
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from schemas.model_version import METRICS_FILE, MODEL_FILE

from .entrypoint import run_in_workspace
from .weight_quantization import QuantizationError, quantize_weights
from .workspace import JobInputError, Workspace

logger = logging.getLogger("cvloop.trainers.quantize")


class QuantizationParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_channel: bool = Field(True, description="One scale per output channel (else one per tensor).")
    min_elements: int = Field(16, ge=1, description="Smaller weight tensors stay float32.")


def quantize(workspace: Workspace) -> dict[str, float]:
    parameters = workspace.parameters(QuantizationParameters)
    original = workspace.base_model_bytes()
    try:
        converted = quantize_weights(original, **parameters.model_dump())
    except QuantizationError as exc:
        raise JobInputError(f"base_model/model.onnx: {exc}") from None
    if not converted.tensors:
        raise JobInputError(
            "base_model/model.onnx has no weight matrix of a Gemm, MatMul or Conv to quantize"
        )
    workspace.write_output(MODEL_FILE, converted.onnx)
    metrics = {
        "size_before_bytes": len(original),
        "size_after_bytes": len(converted.onnx),
        "tensors_quantized": len(converted.tensors),
    }
    workspace.write_json_output(METRICS_FILE, metrics)
    logger.info("model quantized", extra={"tensors": converted.tensors, **metrics})
    return metrics


def main() -> None:
    run_in_workspace(quantize, "quantization")


if __name__ == "__main__":
    main()
