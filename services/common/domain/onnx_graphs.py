"""Small ONNX graphs written from numpy weights with `onnx.helper`: what cvloop's own trainers export
and what the demo, the tests and the benchmarks serve.

Every graph takes a float32 image batch `image` of shape (batch, channels, height, width).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime since 1.10

Matrix = npt.NDArray[np.float32]


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cvloop")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _image_input(channels: int, height: int, width: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", channels, height, width])


def dense_classifier(
    layers: Sequence[tuple[Matrix, Matrix]], input_shape: tuple[int, int, int], *, softmax: bool = True
) -> bytes:
    """Flatten -> (Gemm -> Relu)* -> Gemm [-> Softmax]: an MLP (or, with one layer, a linear model).

    `layers` are (weights of shape (in, out), bias of shape (out,)); the output `scores` has shape
    (batch, classes)."""
    channels, height, width = input_shape
    if layers[0][0].shape[0] != channels * height * width:
        raise ValueError(
            f"first layer takes {layers[0][0].shape[0]} values, the image has {channels * height * width}"
        )
    nodes = [helper.make_node("Flatten", ["image"], ["x0"], axis=1)]
    initializers = []
    current = "x0"
    for i, (weights, bias) in enumerate(layers):
        initializers += [
            numpy_helper.from_array(np.asarray(weights, np.float32), f"w{i}"),
            numpy_helper.from_array(np.asarray(bias, np.float32), f"b{i}"),
        ]
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [f"z{i}"]))
        current = f"z{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"h{i}"]))
            current = f"h{i}"
    if softmax:
        nodes.append(helper.make_node("Softmax", [current], ["scores"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", [current], ["scores"]))
    classes = layers[-1][0].shape[1]
    graph = helper.make_graph(
        nodes,
        "dense_classifier",
        [_image_input(channels, height, width)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", classes])],
        initializers,
    )
    return _model(graph)


def box_detector(
    boxes: Sequence[tuple[float, float, float, float]],
    classes: Sequence[int],
    weights: Sequence[float],
    input_shape: tuple[int, int, int],
) -> bytes:
    """A deterministic detector: fixed normalised boxes [xmin, ymin, xmax, ymax] and classes, each box
    scored `weight x mean brightness of the image` (so a white image scores each box its weight).

    Outputs `boxes` (batch, n, 4), `scores` (batch, n) and `classes` (batch, n, int64)."""
    if not len(boxes) == len(classes) == len(weights):
        raise ValueError("boxes, classes and weights must have one entry per box")
    n = len(boxes)
    initializers = [
        numpy_helper.from_array(np.asarray([boxes], np.float32), "fixed_boxes"),  # (1, n, 4)
        numpy_helper.from_array(np.asarray([weights], np.float32), "box_weights"),  # (1, n)
        numpy_helper.from_array(np.asarray([classes], np.int64), "fixed_classes"),  # (1, n)
        numpy_helper.from_array(np.asarray([1], np.int64), "one_axis"),
        numpy_helper.from_array(np.asarray([n, 4], np.int64), "n_and_4"),
        numpy_helper.from_array(np.asarray([n], np.int64), "n_only"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["brightness"], axes=[1, 2, 3], keepdims=0),  # (batch,)
        helper.make_node("Unsqueeze", ["brightness", "one_axis"], ["brightness_column"]),  # (batch, 1)
        helper.make_node("Mul", ["brightness_column", "box_weights"], ["scores"]),  # (batch, n)
        helper.make_node("Shape", ["image"], ["image_shape"], end=1),  # [batch]
        helper.make_node("Concat", ["image_shape", "n_and_4"], ["boxes_target"], axis=0),
        helper.make_node("Expand", ["fixed_boxes", "boxes_target"], ["boxes"]),
        helper.make_node("Concat", ["image_shape", "n_only"], ["classes_target"], axis=0),
        helper.make_node("Expand", ["fixed_classes", "classes_target"], ["classes"]),
    ]
    channels, height, width = input_shape
    graph = helper.make_graph(
        nodes,
        "box_detector",
        [_image_input(channels, height, width)],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", n, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n]),
            helper.make_tensor_value_info("classes", TensorProto.INT64, ["batch", n]),
        ],
        initializers,
    )
    return _model(graph)


class UnsupportedGraph(ValueError):
    """An ONNX graph that is not one `dense_classifier` writes."""


@dataclass(frozen=True)
class DenseClassifier:
    layers: list[tuple[Matrix, Matrix]]  # (weights (in, out), bias (out,)) per Gemm, float32
    input_shape: tuple[int, int, int]  # (channels, height, width)
    softmax: bool  # the output is probabilities (Softmax) rather than logits (Identity)


def _gemm_is_plain(node: onnx.NodeProto) -> bool:
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    defaults = {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0}
    return all(attributes.get(name, default) == default for name, default in defaults.items())


_DENSE_OPS = re.compile(r"Flatten( Gemm Relu)* Gemm (Softmax|Identity)")
_DENSE_EXPECTED = "one input (batch, C, H, W) -> Flatten -> (Gemm -> Relu)* -> Gemm -> Softmax or Identity"


def read_dense_classifier(data: bytes) -> DenseClassifier:
    """The layers of a graph `dense_classifier` wrote, read back from its initializers; any other graph
    raises UnsupportedGraph saying what differs."""
    try:
        graph = onnx.load_from_string(data).graph
    except Exception as exc:  # the protobuf parser raises its own error types
        raise UnsupportedGraph(f"not an ONNX model: {exc}") from None
    ops = " ".join(node.op_type for node in graph.node)

    def unsupported(why: str) -> UnsupportedGraph:
        return UnsupportedGraph(f"{why} (graph: {ops or 'no nodes'}); expected {_DENSE_EXPECTED}")

    if len(graph.input) != 1 or len(graph.output) != 1:
        raise unsupported(f"{len(graph.input)} inputs and {len(graph.output)} outputs")
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[1:]):
        raise unsupported(f"input {graph.input[0].name!r} is not (batch, C, H, W)")
    if not _DENSE_OPS.fullmatch(ops):
        raise unsupported("other operators")
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    channels, height, width = (d.dim_value for d in dims[1:])
    previous, width_in, layers = graph.input[0].name, channels * height * width, []
    for i, node in enumerate(graph.node):
        if node.input[0] != previous:
            raise unsupported(f"node {i} ({node.op_type}) does not take the previous node's output")
        previous = node.output[0]
        if node.op_type == "Flatten" and any(a.name == "axis" and a.i != 1 for a in node.attribute):
            raise unsupported("Flatten is not on axis 1")
        if node.op_type == "Softmax" and any(a.name == "axis" and a.i not in (1, -1) for a in node.attribute):
            raise unsupported("Softmax is not over the classes")
        if node.op_type != "Gemm":
            continue
        inputs = [*node.input, "", ""]  # Gemm's bias input is optional; dense_classifier always writes one
        weights, bias = initializers.get(inputs[1]), initializers.get(inputs[2])
        if not _gemm_is_plain(node) or weights is None or bias is None:
            raise unsupported(f"node {i} is not a plain Gemm with initializer weights and bias")
        if weights.shape[:1] != (width_in,) or bias.shape != weights.shape[1:]:
            raise unsupported(
                f"node {i}'s weights {weights.shape} and bias {bias.shape} do not fit {width_in} inputs"
            )
        layers.append((weights.astype(np.float32), bias.astype(np.float32)))
        width_in = weights.shape[1]
    if previous != graph.output[0].name:
        raise unsupported("the last node does not write the graph's output")
    return DenseClassifier(layers, (channels, height, width), softmax=graph.node[-1].op_type == "Softmax")
