"""Weight-only int8 quantization of an ONNX model (pure, bytes in and out): every float32 weight matrix of
a Gemm, MatMul or Conv is stored as int8 with a float scale (symmetric, per output channel or per tensor)
and turned back into float32 by a DequantizeLinear node in front of its consumers. The file shrinks about
4x; inputs, outputs and the arithmetic the model runs stay float32, so serving calls it unchanged."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

PER_AXIS_OPSET = 13  # DequantizeLinear takes an axis from opset 13 on


class QuantizationError(ValueError):
    """The model cannot be quantized as asked; the message says why."""


@dataclass(frozen=True)
class QuantizedModel:
    onnx: bytes
    tensors: list[str]  # the initializers now stored as int8


def _output_channel_axis(node: onnx.NodeProto, input_index: int, ndim: int) -> int | None:
    """The axis of a weight input that indexes output channels, or None when the input is no weight."""
    if input_index != 1:
        return None
    if node.op_type == "Gemm" and ndim == 2:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    if node.op_type == "MatMul" and ndim == 2:
        return 1
    if node.op_type == "Conv" and ndim >= 3:
        return 0
    return None


def _symmetric_int8(weights: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """int8 values and the scale (one per slice along `axis`, or a scalar) with weights ~= values x scale."""
    other = tuple(d for d in range(weights.ndim) if d != axis)
    peak = np.abs(weights).max(axis=other, keepdims=True)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)  # an all-zero slice keeps scale 1
    values = np.clip(np.rint(weights / scale), -127, 127).astype(np.int8)
    return values, scale.reshape(-1) if axis is not None else scale.reshape(())


def quantize_weights(
    model_bytes: bytes, *, per_channel: bool = True, min_elements: int = 16
) -> QuantizedModel:
    """The model with its weight matrices of at least `min_elements` values stored as int8."""
    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # the protobuf parser raises its own error types
        raise QuantizationError(f"not an ONNX model: {exc}") from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if per_channel and opset < PER_AXIS_OPSET:
        raise QuantizationError(f"per-channel scales need opset {PER_AXIS_OPSET}; the model has {opset}")
    graph = model.graph
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumers[name].append((node, index))
    graph_inputs = {value.name for value in graph.input}

    kept, dequantize, quantized = [], [], []
    for tensor in graph.initializer:
        weights = numpy_helper.to_array(tensor)
        axes = {_output_channel_axis(node, index, weights.ndim) for node, index in consumers[tensor.name]}
        if (
            tensor.data_type != onnx.TensorProto.FLOAT
            or weights.size < min_elements
            or tensor.name in graph_inputs  # an overridable initializer must stay a float input
            or not consumers[tensor.name]
            or None in axes
            or len(axes) != 1
        ):
            kept.append(tensor)
            continue
        axis = axes.pop() if per_channel else None
        values, scale = _symmetric_int8(weights, axis)
        names = [f"{tensor.name}_int8", f"{tensor.name}_scale", f"{tensor.name}_zero_point"]
        kept += [
            numpy_helper.from_array(values, names[0]),
            numpy_helper.from_array(scale, names[1]),
            numpy_helper.from_array(np.zeros_like(scale, np.int8), names[2]),
        ]
        attributes = {"axis": axis} if axis is not None else {}
        dequantize.append(helper.make_node("DequantizeLinear", names, [tensor.name], **attributes))
        quantized.append(tensor.name)

    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = dequantize + list(graph.node)  # the dequantized weights exist before any consumer runs
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return QuantizedModel(model.SerializeToString(), quantized)
