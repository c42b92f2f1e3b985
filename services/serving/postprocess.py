"""A model's output tensors -> a prediction of the deployment's detection type, labelled with the
model version's labelmap and placed in the original image's pixels (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from schemas.model_io import ModelIO
from schemas.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    DetectionType,
    Prediction,
)
from services.common.domain.preprocess import Tensor

# The output tensors each detection type reads, by role, in the order used when ModelIO.outputs is empty.
OUTPUT_ROLES: dict[DetectionType, tuple[str, ...]] = {
    DetectionType.CLASSIFICATION: ("scores",),
    DetectionType.DETECTION: ("boxes", "scores", "classes"),
}


class OutputError(ValueError):
    """The model answered tensors that do not fit its settings or labelmap."""


def output_names(detection_type: DetectionType, io: ModelIO, graph_outputs: Sequence[str]) -> tuple[str, ...]:
    """The output tensor of each role (OUTPUT_ROLES order); ValueError when the graph lacks one."""
    if detection_type not in OUTPUT_ROLES:
        raise ValueError(
            f"serving answers classification and detection; {detection_type} is not supported yet"
        )
    roles = OUTPUT_ROLES[detection_type]
    if io.outputs:
        names = tuple(io.outputs.get(role, "") for role in roles)
    elif len(graph_outputs) >= len(roles):
        names = tuple(graph_outputs[: len(roles)])
    else:
        raise ValueError(
            f"a {detection_type} model needs outputs {list(roles)}; the graph has {list(graph_outputs)}"
        )
    missing = [
        f"{role}={name!r}" for role, name in zip(roles, names, strict=True) if name not in graph_outputs
    ]
    if missing:
        raise ValueError(f"io.outputs names tensors the graph does not have: {', '.join(missing)}")
    return names


def _label(labels: Sequence[str], index: int) -> str:
    if not 0 <= index < len(labels):
        raise OutputError(f"class index {index} is outside the labelmap's {len(labels)} labels")
    return labels[index]


def _scores(values: Tensor) -> np.ndarray:
    return np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)  # float rounding can pass 1.0


def classification(scores: Tensor, io: ModelIO, labels: Sequence[str]) -> ClassificationPrediction:
    """Every class with its score, best first."""
    row = np.asarray(scores, dtype=np.float64).reshape(-1)
    if row.size != len(labels):
        raise OutputError(f"scores has {row.size} classes but the labelmap has {len(labels)} labels")
    if io.scores_are_logits:
        row = np.exp(row - row.max())
        row /= row.sum()
    order = np.argsort(-row, kind="stable")
    return ClassificationPrediction(classes=[labels[i] for i in order], scores=_scores(row[order]).tolist())


def detection(
    boxes: Tensor,
    scores: Tensor,
    classes: Tensor,
    io: ModelIO,
    labels: Sequence[str],
    image_size: tuple[int, int],
) -> DetectionPrediction:
    """Boxes in the original image's pixels [xmin, ymin, xmax, ymax], clipped to the image."""
    width, height = image_size
    box_rows = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    score_row = np.asarray(scores, dtype=np.float64).reshape(-1)
    class_row = np.asarray(classes).reshape(-1)
    if not len(box_rows) == len(score_row) == len(class_row):
        raise OutputError(
            f"boxes, scores and classes disagree on the box count ({len(box_rows)}, {len(score_row)}, "
            f"{len(class_row)})"
        )
    if io.box_format == "xyxy_normalized":
        factors = np.array([width, height, width, height], dtype=np.float64)
    else:
        factors = np.array([width / io.width, height / io.height] * 2, dtype=np.float64)
    pixels = box_rows * factors
    pixels[:, [0, 2]] = np.clip(pixels[:, [0, 2]], 0.0, width)
    pixels[:, [1, 3]] = np.clip(pixels[:, [1, 3]], 0.0, height)
    pixels[:, 2] = np.maximum(pixels[:, 0], pixels[:, 2])
    pixels[:, 3] = np.maximum(pixels[:, 1], pixels[:, 3])
    return DetectionPrediction(
        boxes=[tuple(box) for box in pixels.tolist()],
        classes=[_label(labels, int(c)) for c in class_row],
        scores=_scores(score_row).tolist(),
    )


def to_prediction(
    detection_type: DetectionType,
    outputs: Mapping[str, Tensor],
    names: Sequence[str],
    io: ModelIO,
    labels: Sequence[str],
    image_size: tuple[int, int],
) -> Prediction:
    """`outputs` by tensor name; `names` the tensor of each role, as `output_names` chose them."""
    tensors = [outputs[name] for name in names]
    if detection_type == DetectionType.CLASSIFICATION:
        return classification(tensors[0], io, labels)
    return detection(*tensors, io=io, labels=labels, image_size=image_size)
