"""An ONNX graph's tensors, and whether a model version's io settings can serve it (pure): the api
checks this when a model version is registered or deployed, and serving when it loads one, so a version
that cannot be served is refused at the door with the field at fault."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from pydantic import BaseModel, ConfigDict

from schemas.model_io import ModelIO
from schemas.model_version import MODEL_FILE
from schemas.predictions import DetectionType
from schemas.vocabulary import OutputFormat
from services.common.domain.registry import ModelFile

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

# The output tensors each format reads, by role, in the order used when ModelIO.outputs is empty.
ROLES: dict[OutputFormat, tuple[str, ...]] = {
    OutputFormat.SOFTMAX: ("scores",),
    OutputFormat.LOGITS: ("scores",),
    OutputFormat.BOXES_SCORES_CLASSES: ("boxes", "scores", "classes"),
    OutputFormat.YOLO_RAW: ("predictions",),
    OutputFormat.NMS_FREE: ("detections",),
    OutputFormat.TORCHVISION: ("boxes", "labels", "scores"),
    OutputFormat.YOLO_SEG: ("predictions", "protos"),
}
TORCHVISION_MASKS = "masks"  # torchvision's fourth role, read for segmentation


def roles(detection_type: DetectionType, output_format: OutputFormat) -> tuple[str, ...]:
    if output_format == OutputFormat.TORCHVISION and detection_type == DetectionType.SEGMENTATION:
        return (*ROLES[output_format], TORCHVISION_MASKS)
    return ROLES[output_format]


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

    def output(self, name: str) -> TensorSpec:
        return next(o for o in self.outputs if o.name == name)


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


class Unservable(ValueError):
    """The model version cannot be served as it is; `field` names the setting at fault (io.width,
    io.outputs.boxes, labelmap_id, files...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Servable:
    """What serving needs to call the graph and read its answer."""

    output_format: OutputFormat
    input: TensorSpec
    outputs: tuple[str, ...]  # the tensor of each role, in `roles` order
    classes: int | None  # the class count the graph answers, where its shapes tell it


def _known(dim: int) -> bool:
    return dim > 0


def _check_input(signature: Signature, io: ModelIO, output_format: OutputFormat) -> TensorSpec:
    """One image batch whose fixed dimensions match the io settings; torchvision's exports take one
    (C, H, W) image without the batch dimension."""
    if len(signature.inputs) != 1:
        raise Unservable(
            "files", f"the graph must take one input; it takes {[i.name for i in signature.inputs]}"
        )
    spec = signature.inputs[0]
    channels = 1 if io.color == "gray" else 3
    if io.layout == "NCHW":
        expected = [(1, "io"), (channels, "io.color"), (io.height, "io.height"), (io.width, "io.width")]
    else:
        expected = [(1, "io"), (io.height, "io.height"), (io.width, "io.width"), (channels, "io.color")]
    if output_format == OutputFormat.TORCHVISION and len(spec.shape) == 3 and io.layout == "NCHW":
        expected = expected[1:]
    shape_text = (
        f"input {spec.name!r} has shape {list(spec.shape)}; io settings make {[e for e, _ in expected]}"
    )
    if len(spec.shape) != len(expected):
        raise Unservable("io.layout", shape_text)
    for dim, (wanted, field) in zip(spec.shape, expected, strict=True):
        if _known(dim) and dim != wanted:
            raise Unservable(field, shape_text)
    wanted_type = "UINT8" if io.dtype == "uint8" else "FP32"
    if spec.datatype != wanted_type:
        raise Unservable(
            "io.dtype", f"input {spec.name!r} is {spec.datatype}; io settings make {wanted_type}"
        )
    return spec


def _output_names(role_names: Sequence[str], io: ModelIO, signature: Signature) -> tuple[str, ...]:
    graph_outputs = [o.name for o in signature.outputs]
    if io.outputs:
        names = tuple(io.outputs.get(role, "") for role in role_names)
        for role, name in zip(role_names, names, strict=True):
            if name not in graph_outputs:
                raise Unservable(
                    f"io.outputs.{role}",
                    f"io.outputs.{role} is {name!r}; the graph's outputs are {graph_outputs}",
                )
        return names
    if len(graph_outputs) < len(role_names):
        raise Unservable(
            "io.output_format",
            f"output format {io.output_format or 'default'} reads outputs {list(role_names)}; "
            f"the graph has {graph_outputs}",
        )
    return tuple(graph_outputs[: len(role_names)])


def _shape_problem(output_format: OutputFormat, shapes: Sequence[tuple[int, ...]]) -> tuple[str, int | None]:
    """What is wrong with the outputs' shapes for the format ("" when nothing), and the class count the
    shapes tell (None when they do not)."""
    first = shapes[0]
    match output_format:
        case OutputFormat.SOFTMAX | OutputFormat.LOGITS:
            return "", first[-1] if first and _known(first[-1]) else None
        case OutputFormat.BOXES_SCORES_CLASSES:
            return ("" if first[-1:] in ((4,), (-1,)) else "boxes must end in 4 values"), None
        case OutputFormat.YOLO_RAW:
            if len(first) != 3:
                return "predictions must be (1, 4+C, N) (YOLOv8/11) or (1, N, 5+C) (YOLOv5)", None
            a, b = first[1:]
            if not (_known(a) and _known(b)):
                return "", None
            return ("", a - 4) if a < b else ("", b - 5)
        case OutputFormat.NMS_FREE:
            return ("" if len(first) == 3 and first[-1] in (6, -1) else "detections must be (1, N, 6)"), None
        case OutputFormat.TORCHVISION:
            if len(first) != 2 or first[-1] not in (4, -1):
                return "boxes must be (N, 4)", None
            if len(shapes) == 4 and len(shapes[3]) != 4:
                return "masks must be (N, 1, H, W)", None
            return "", None
        case OutputFormat.YOLO_SEG:
            protos = shapes[1]
            if len(first) != 3 or len(protos) != 4:
                return "predictions must be (1, 4+C+M, N) and protos (1, M, h, w)", None
            rows, coefficients = first[1], protos[1]
            if _known(rows) and _known(coefficients):
                return "", rows - 4 - coefficients
            return "", None


_INTEGERS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})


def _check_torchvision_types(signature: Signature, names: Sequence[str]) -> None:
    """torchvision's labels are integers and its scores floats. The exporter orders the outputs as the
    model's answer does, and SSD's is boxes, scores, labels: read in graph order, scores would be taken
    for labels (every box the background) and labels for scores."""
    labels, scores = signature.output(names[1]), signature.output(names[2])
    if labels.datatype not in _INTEGERS or scores.datatype in _INTEGERS:
        raise Unservable(
            "io.outputs.labels",
            f"the labels role reads {labels.name!r} ({labels.datatype}) and the scores role "
            f"{scores.name!r} ({scores.datatype}); torchvision's labels are integers and its scores "
            "floats: name each role's tensor in io.outputs",
        )


def check_servable(
    detection_type: DetectionType, io: ModelIO, signature: Signature, labels: int | None
) -> Servable:
    """The graph's tensors as the io settings read them; Unservable naming the field at fault.
    `labels`: the labelmap's size (None: no labelmap, classes are named by their index)."""
    try:
        output_format = io.format_for(detection_type)
    except ValueError as exc:
        raise Unservable("io.output_format", str(exc)) from None
    spec = _check_input(signature, io, output_format)
    names = _output_names(roles(detection_type, output_format), io, signature)
    problem, classes = _shape_problem(output_format, [signature.output(n).shape for n in names])
    if problem:
        shapes = {n: list(signature.output(n).shape) for n in names}
        raise Unservable(
            "io.output_format", f"{problem} for output format {output_format}; the graph has {shapes}"
        )
    if output_format == OutputFormat.TORCHVISION:
        _check_torchvision_types(signature, names)
    if classes is not None and classes <= 0:
        raise Unservable("io.output_format", f"the outputs' shapes leave {classes} classes")
    if classes is not None and labels is not None and classes != labels:
        raise Unservable(
            "labelmap_id", f"the graph answers {classes} classes but the labelmap has {labels} labels"
        )
    if classes is None and labels is None:
        raise Unservable(
            "labelmap_id", f"output format {output_format} does not tell the class count: give a labelmap"
        )
    return Servable(output_format, spec, names, classes if classes is not None else labels)


def onnx_file(files: Sequence[ModelFile]) -> ModelFile:
    """The file named model.onnx, else the only .onnx file."""
    named = [f for f in files if f.name == MODEL_FILE]
    onnx_files = named or [f for f in files if f.name.lower().endswith(".onnx")]
    if len(onnx_files) != 1:
        raise Unservable(
            "files",
            f"it needs one ONNX file (named {MODEL_FILE}, or the only *.onnx); "
            f"it has {[f.name for f in files]}",
        )
    return onnx_files[0]
