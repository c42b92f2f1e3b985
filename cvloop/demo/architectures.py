"""Small convolutional ONNX graphs with the exact output layouts of the model families people deploy,
written with `onnx.helper` (torch's PyPI wheel pulls about 3 GB of CUDA libraries, too heavy for a
test extra): YOLOv8/11 detection (1, 4+C, 8400), YOLOv5 (1, 25200, 5+C), NMS-free (1, 300, 6),
YOLOv8/11-seg (1, 4+C+32, 8400) with prototypes (1, 32, 160, 160), and torchvision's Mask R-CNN-style
boxes, labels, scores and masks on one batch-less image. Their weights are random but fixed (a seed), so
their answers depend on the image; the tests and benchmarks serve them and decode their answers.

Each YOLO head is a strided convolution per level (strides 8, 16 and 32 on a 640x640 input), its
outputs flattened and concatenated as the exporters lay them out; boxes are centre, size in input
pixels, scores pass a sigmoid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from schemas.model_io import ModelIO
from schemas.predictions import DetectionType
from schemas.vocabulary import OutputFormat, Resize
from services.common.domain.onnx_graphs import IR_VERSION, OPSET

YOLO_SIZE = 640
STRIDES = (8, 16, 32)
COCO_CLASSES = 80
MASK_COEFFICIENTS = 32
BOX_SCALE = 160.0  # the largest box side the heads answer, in input pixels
SCORE_SHIFT = -4.0  # on the score logits' bias


@dataclass(frozen=True)
class Architecture:
    name: str
    onnx: bytes
    io: ModelIO
    detection_type: DetectionType
    labels: list[str]


class _Graph:
    """Nodes and initializers under construction, with fresh names."""

    def __init__(self, seed: int) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, value: np.ndarray, prefix: str = "const") -> str:
        name = self.name(prefix)
        self.weights.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attributes: object) -> str:
        out = output or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attributes))
        return out

    def conv(
        self, x: str, channels_in: int, channels_out: int, stride: int, shift: np.ndarray | None = None
    ) -> str:
        """A stride x stride convolution with that stride (a patch embedding), random fixed weights;
        `shift` is added to the bias (negative on score channels: most anchors score low, as trained
        heads do)."""
        weights = self.rng.normal(
            0, 1 / np.sqrt(channels_in * stride * stride), (channels_out, channels_in, stride, stride)
        )
        bias = self.rng.normal(0, 0.5, channels_out) + (0.0 if shift is None else shift)
        return self.op(
            "Conv",
            [x, self.const(weights.astype(np.float32), "w"), self.const(bias.astype(np.float32), "b")],
            kernel_shape=[stride, stride],
            strides=[stride, stride],
        )

    def reshape(self, x: str, shape: list[int]) -> str:
        return self.op("Reshape", [x, self.const(np.asarray(shape, np.int64), "shape")])

    def scaled(self, x: str, factors: np.ndarray, offsets: np.ndarray | None = None) -> str:
        """x * factors (+ offsets), broadcast."""
        out = self.op("Mul", [x, self.const(factors.astype(np.float32), "scale")])
        if offsets is not None:
            out = self.op("Add", [out, self.const(offsets.astype(np.float32), "offset")])
        return out

    def model(
        self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto], name: str
    ) -> bytes:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.weights)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cvloop"
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=True)
        return model.SerializeToString()


def _image(shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)


def _output(name: str, shape: list[int | str], element: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, element, shape)


def _yolo_io(output_format: OutputFormat) -> ModelIO:
    return ModelIO(width=YOLO_SIZE, height=YOLO_SIZE, resize=Resize.LETTERBOX, output_format=output_format)


def _levels(g: _Graph, classes: int, extra: int = 0) -> list[tuple[str, int]]:
    """The heads' raw outputs per level, flattened to (1, 4+C+extra, cells), with the cell counts."""
    channels = 4 + classes + extra
    shift = np.concatenate([np.zeros(4), np.full(classes, SCORE_SHIFT), np.zeros(extra)])
    flattened = []
    for stride in STRIDES:
        cells = (YOLO_SIZE // stride) ** 2
        head = g.conv("images", 3, channels, stride, shift)
        flattened.append((g.reshape(head, [1, channels, cells]), cells))
    return flattened


def _decoded_rows(g: _Graph, raw: str, classes: int, extra: int = 0) -> str:
    """(1, 4+C+extra, N) raw -> centre and size in pixels, class scores in (0, 1), extra rows as they are."""
    squashed = g.op("Sigmoid", [raw])
    factors = np.concatenate([[YOLO_SIZE, YOLO_SIZE, BOX_SCALE, BOX_SCALE], np.ones(classes)]).reshape(
        1, -1, 1
    )
    head = g.op(
        "Slice",
        [
            squashed,
            g.const(np.array([0], np.int64)),
            g.const(np.array([4 + classes], np.int64)),
            g.const(np.array([1], np.int64)),
        ],
    )
    rows = g.scaled(head, factors)
    if not extra:
        return rows
    tail = g.op(
        "Slice",
        [
            raw,
            g.const(np.array([4 + classes], np.int64)),
            g.const(np.array([4 + classes + extra], np.int64)),
            g.const(np.array([1], np.int64)),
        ],
    )
    return g.op("Concat", [rows, tail], axis=1)


def yolov8(classes: int = COCO_CLASSES, seed: int = 8) -> Architecture:
    """YOLOv8/11 detection: one (1, 4+C, 8400) output."""
    g = _Graph(seed)
    levels = _levels(g, classes)
    raw = g.op("Concat", [name for name, _ in levels], axis=2)
    _decoded_rows(g, raw, classes)
    g.nodes[-1].output[0] = "output0"
    anchors = sum(cells for _, cells in levels)
    onnx_bytes = g.model(
        [_image([1, 3, YOLO_SIZE, YOLO_SIZE])], [_output("output0", [1, 4 + classes, anchors])], "yolov8"
    )
    return Architecture(
        "yolov8", onnx_bytes, _yolo_io(OutputFormat.YOLO_RAW), DetectionType.DETECTION, _labels(classes)
    )


def yolov5(classes: int = COCO_CLASSES, seed: int = 5) -> Architecture:
    """YOLOv5 detection: three anchors a cell, one (1, 25200, 5+C) output (with objectness)."""
    g = _Graph(seed)
    channels = 5 + classes
    parts = []
    for stride in STRIDES:
        cells = (YOLO_SIZE // stride) ** 2
        shift = np.tile(np.concatenate([np.zeros(4), np.full(1 + classes, SCORE_SHIFT / 2)]), 3)
        raw = g.reshape(g.conv("images", 3, 3 * channels, stride, shift), [1, 3, channels, cells])
        parts.append(g.reshape(g.op("Transpose", [raw], perm=[0, 1, 3, 2]), [1, 3 * cells, channels]))
    squashed = g.op("Sigmoid", [g.op("Concat", parts, axis=1)])
    factors = np.concatenate([[YOLO_SIZE, YOLO_SIZE, BOX_SCALE, BOX_SCALE], np.ones(1 + classes)]).reshape(
        1, 1, -1
    )
    g.op("Mul", [squashed, g.const(factors.astype(np.float32))], "output0")
    anchors = 3 * sum((YOLO_SIZE // s) ** 2 for s in STRIDES)
    onnx_bytes = g.model(
        [_image([1, 3, YOLO_SIZE, YOLO_SIZE])], [_output("output0", [1, anchors, channels])], "yolov5"
    )
    return Architecture(
        "yolov5", onnx_bytes, _yolo_io(OutputFormat.YOLO_RAW), DetectionType.DETECTION, _labels(classes)
    )


def nms_free(classes: int = COCO_CLASSES, detections: int = 300, seed: int = 10) -> Architecture:
    """End-to-end (YOLOv10-style) detection: one (1, 300, 6) output of x1, y1, x2, y2, score, class."""
    g = _Graph(seed)
    cells = (YOLO_SIZE // 32) ** 2
    raw = g.reshape(g.conv("images", 3, 6, 32), [1, 6, cells])
    rows = g.op("Transpose", [g.op("Sigmoid", [raw])], perm=[0, 2, 1])
    first = g.op(
        "Slice",
        [
            rows,
            g.const(np.array([0, 0], np.int64)),
            g.const(np.array([detections, 5], np.int64)),
            g.const(np.array([1, 2], np.int64)),
        ],
    )
    half = YOLO_SIZE / 2
    boxes_scores = g.scaled(
        first, np.array([half, half, half, half, 1.0]), np.array([0.0, 0.0, half, half, 0.0])
    )
    last = g.op(
        "Slice",
        [
            rows,
            g.const(np.array([0, 5], np.int64)),
            g.const(np.array([detections, 6], np.int64)),
            g.const(np.array([1, 2], np.int64)),
        ],
    )
    cls = g.op("Floor", [g.scaled(last, np.array([classes - 1e-3]))])
    g.op("Concat", [boxes_scores, cls], "output0", axis=2)
    onnx_bytes = g.model(
        [_image([1, 3, YOLO_SIZE, YOLO_SIZE])], [_output("output0", [1, detections, 6])], "nms_free"
    )
    return Architecture(
        "nms-free", onnx_bytes, _yolo_io(OutputFormat.NMS_FREE), DetectionType.DETECTION, _labels(classes)
    )


def yolov8_seg(classes: int = COCO_CLASSES, seed: int = 80) -> Architecture:
    """YOLOv8/11 segmentation: (1, 4+C+32, 8400) with 32 mask coefficients, prototypes (1, 32, 160, 160)."""
    g = _Graph(seed)
    levels = _levels(g, classes, MASK_COEFFICIENTS)
    raw = g.op("Concat", [name for name, _ in levels], axis=2)
    _decoded_rows(g, raw, classes, MASK_COEFFICIENTS)
    g.nodes[-1].output[0] = "output0"
    g.scaled(g.conv("images", 3, MASK_COEFFICIENTS, 4), np.array([4.0]))
    g.nodes[-1].output[0] = "output1"
    anchors = sum(cells for _, cells in levels)
    side = YOLO_SIZE // 4
    outputs = [
        _output("output0", [1, 4 + classes + MASK_COEFFICIENTS, anchors]),
        _output("output1", [1, MASK_COEFFICIENTS, side, side]),
    ]
    onnx_bytes = g.model([_image([1, 3, YOLO_SIZE, YOLO_SIZE])], outputs, "yolov8_seg")
    return Architecture(
        "yolov8-seg",
        onnx_bytes,
        _yolo_io(OutputFormat.YOLO_SEG),
        DetectionType.SEGMENTATION,
        _labels(classes),
    )


TORCHVISION_SIZE = 160


def torchvision_mask_rcnn(classes: int = 5, seed: int = 91) -> Architecture:
    """torchvision's detection export: one (3, H, W) image in [0, 1], no batch dimension; boxes (N, 4)
    in input pixels, labels (N,) int64 with 0 the background, scores (N,), masks (N, 1, H, W)."""
    g = _Graph(seed)
    batch = g.op("Unsqueeze", ["images", g.const(np.array([0], np.int64))])
    side = TORCHVISION_SIZE
    count = (side // 32) ** 2
    raw = g.reshape(g.conv(batch, 3, 6 + 8, 32), [6 + 8, count])
    rows = g.op("Transpose", [raw], perm=[1, 0])  # (N, 14)
    squashed = g.op("Sigmoid", [rows])

    def columns(source: str, start: int, end: int) -> str:
        return g.op(
            "Slice",
            [
                source,
                g.const(np.array([start], np.int64)),
                g.const(np.array([end], np.int64)),
                g.const(np.array([1], np.int64)),
            ],
        )

    half = side / 2
    g.scaled(columns(squashed, 0, 4), np.array([half, half, half, half]), np.array([0, 0, half, half]))
    g.nodes[-1].output[0] = "boxes"
    scaled = g.scaled(columns(squashed, 4, 5), np.array([classes - 1e-3]), np.array([1.0]))  # labels 1..C
    g.op("Cast", [g.reshape(g.op("Floor", [scaled]), [count])], "labels", to=TensorProto.INT64)
    g.reshape(columns(squashed, 5, 6), [count])
    g.nodes[-1].output[0] = "scores"
    protos = g.reshape(g.conv(batch, 3, 8, 1), [8, side * side])
    logits = g.op("MatMul", [g.scaled(columns(rows, 6, 14), np.array([3.0])), protos])
    g.reshape(g.op("Sigmoid", [logits]), [count, 1, side, side])
    g.nodes[-1].output[0] = "masks"
    outputs = [
        _output("boxes", [count, 4]),
        _output("labels", [count], TensorProto.INT64),
        _output("scores", [count]),
        _output("masks", [count, 1, side, side]),
    ]
    onnx_bytes = g.model([_image([3, side, side])], outputs, "torchvision_mask_rcnn")
    io = ModelIO(width=side, height=side, output_format=OutputFormat.TORCHVISION)
    return Architecture(
        "torchvision-maskrcnn",
        onnx_bytes,
        io,
        DetectionType.SEGMENTATION,
        ["__background__", *_labels(classes)],
    )


def _labels(classes: int) -> list[str]:
    return [f"class-{i}" for i in range(classes)]
