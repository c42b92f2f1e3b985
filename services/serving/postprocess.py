"""A model's output tensors -> a prediction of the deployment's detection type, read as the model
version's output format says, labelled with its labelmap and placed in the original image's pixels
(pure). The YOLO formats are decoded and suppressed (class-aware NMS) here, vectorised with numpy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schemas.model_io import ModelIO
from schemas.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    DetectionType,
    Prediction,
    SegmentationPrediction,
)
from schemas.vocabulary import OutputFormat
from services.common.domain.polygons import Points, mask_polygon
from services.common.domain.preprocess import Placement, Tensor

from .nms import Floats, Ints, nms


class OutputError(ValueError):
    """The model answered tensors that do not fit its settings or labelmap."""


@dataclass(frozen=True)
class Reading:
    """How to read one model's answer to one image."""

    detection_type: DetectionType
    output_format: OutputFormat
    io: ModelIO
    labels: Sequence[str]
    placement: Placement  # of the image in the model's input
    threshold: float  # the deployment's confidence threshold: candidates under it are dropped before NMS
    max_polygon_points: int


@dataclass(frozen=True)
class _Found:
    """Detections in the model's input pixels: boxes [x1, y1, x2, y2], scores, class indices, and for
    segmentation one polygon (or None when its mask is empty) per detection."""

    boxes: Floats
    scores: Floats
    classes: Ints
    polygons: list[Points | None] | None = None


def _scores(values: Floats) -> list[float]:
    return np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0).tolist()  # float rounding can pass 1.0


def _labelled(labels: Sequence[str], classes: Ints) -> list[str]:
    bad = classes[(classes < 0) | (classes >= len(labels))]
    if bad.size:
        raise OutputError(f"class index {int(bad[0])} is outside the labelmap's {len(labels)} labels")
    return [labels[i] for i in classes.tolist()]


def classification(scores: Tensor, logits: bool, labels: Sequence[str]) -> ClassificationPrediction:
    """Every class with its score, best first."""
    row = np.asarray(scores, dtype=np.float64).reshape(-1)
    if row.size != len(labels):
        raise OutputError(f"scores has {row.size} classes but the labelmap has {len(labels)} labels")
    if logits:
        row = np.exp(row - row.max())
        row /= row.sum()
    order = np.argsort(-row, kind="stable")
    return ClassificationPrediction(classes=[labels[i] for i in order], scores=_scores(row[order]))


def _xyxy(centre_size: Floats) -> Floats:
    """(4, K) rows cx, cy, w, h -> (K, 4) x1, y1, x2, y2."""
    cx, cy, w, h = centre_size
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _yolo(features: Floats, classes: int, objectness: bool, reading: Reading) -> tuple[_Found, Ints]:
    """Features-first YOLO rows (cx, cy, w, h, [objectness], class scores..., [mask coefficients...]) by
    anchor -> the detections NMS keeps, and their anchors' indices."""
    first_class = 5 if objectness else 4
    class_scores = features[first_class : first_class + classes]
    if objectness:
        class_scores = class_scores * features[4]
    best = class_scores.max(axis=0)
    anchors = np.flatnonzero(best >= reading.threshold)
    boxes = _xyxy(features[:4, anchors].astype(np.float64))
    scores = best[anchors].astype(np.float64)
    labels = class_scores[:, anchors].argmax(axis=0).astype(np.int64)
    kept = nms(boxes, scores, labels, reading.io.iou_threshold, reading.io.max_detections)
    return _Found(boxes[kept], scores[kept], labels[kept]), anchors[kept]


def _yolo_raw(predictions: Tensor, reading: Reading) -> _Found:
    rows = np.asarray(predictions)[0]
    if rows.shape[0] < rows.shape[1]:  # YOLOv8/11: (4+C, N), no objectness
        return _yolo(rows, rows.shape[0] - 4, objectness=False, reading=reading)[0]
    return _yolo(rows.T, rows.shape[1] - 5, objectness=True, reading=reading)[0]  # YOLOv5: (N, 5+C)


def _polygon(
    mask: np.ndarray, reading: Reading, scale: tuple[float, float], offset: tuple[int, int]
) -> Points | None:
    """A mask (a crop at `offset` of a grid over the model's input, each cell `scale` input pixels)
    -> its polygon in the input's pixels."""
    polygon = mask_polygon(mask, reading.max_polygon_points)
    if polygon is None:
        return None
    return (polygon + offset) * scale


def _yolo_seg(predictions: Tensor, protos: Tensor, reading: Reading) -> _Found:
    rows, prototypes = np.asarray(predictions)[0], np.asarray(protos)[0]
    coefficients, mask_h, mask_w = prototypes.shape
    found, anchors = _yolo(rows, rows.shape[0] - 4 - coefficients, objectness=False, reading=reading)
    scale = (reading.io.width / mask_w, reading.io.height / mask_h)
    level = math.log(reading.io.mask_threshold / (1 - reading.io.mask_threshold))  # sigmoid(x) > t
    polygons = []
    for (x1, y1, x2, y2), anchor in zip(found.boxes, anchors, strict=True):
        # The prototype cells whose centres lie in the box: the mask is cut to its box.
        left, top = max(0, math.ceil(x1 / scale[0] - 0.5)), max(0, math.ceil(y1 / scale[1] - 0.5))
        right, bottom = (
            min(mask_w, math.floor(x2 / scale[0] - 0.5) + 1),
            min(mask_h, math.floor(y2 / scale[1] - 0.5) + 1),
        )
        if right <= left or bottom <= top:
            polygons.append(None)
            continue
        logits = np.tensordot(rows[-coefficients:, anchor], prototypes[:, top:bottom, left:right], axes=1)
        polygons.append(_polygon(logits > level, reading, scale, (left, top)))
    return _Found(found.boxes, found.scores, found.classes, polygons)


def _torchvision(tensors: Sequence[Tensor], reading: Reading) -> _Found:
    boxes, labels, scores = (np.asarray(t) for t in tensors[:3])
    if not len(boxes) == len(labels) == len(scores):
        raise OutputError(
            f"boxes, labels and scores disagree on the count ({len(boxes)}, {len(labels)}, {len(scores)})"
        )
    keep = np.flatnonzero(scores >= reading.threshold)
    found = _Found(
        boxes[keep].astype(np.float64), scores[keep].astype(np.float64), labels[keep].astype(np.int64)
    )
    if len(tensors) < 4:
        return found
    masks = np.asarray(tensors[3])[keep, 0]
    height, width = masks.shape[1:]
    scale = (reading.io.width / width, reading.io.height / height)
    polygons = []
    for (x1, y1, x2, y2), mask in zip(found.boxes, masks, strict=True):
        # torchvision pastes each mask inside its box: only the box's pixels are traced.
        left, top = max(0, math.floor(x1 / scale[0])), max(0, math.floor(y1 / scale[1]))
        right, bottom = min(width, math.ceil(x2 / scale[0])), min(height, math.ceil(y2 / scale[1]))
        inside = mask[top:bottom, left:right] > reading.io.mask_threshold
        polygons.append(_polygon(inside, reading, scale, (left, top)) if inside.size else None)
    return _Found(found.boxes, found.scores, found.classes, polygons)


def _nms_free(detections: Tensor, reading: Reading) -> _Found:
    rows = np.asarray(detections, dtype=np.float64).reshape(-1, 6)
    rows = rows[rows[:, 4] >= reading.threshold]
    return _Found(rows[:, :4], rows[:, 4], rows[:, 5].round().astype(np.int64))


def _boxes_scores_classes(tensors: Sequence[Tensor], reading: Reading) -> _Found:
    boxes = np.asarray(tensors[0], dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(tensors[1], dtype=np.float64).reshape(-1)
    classes = np.asarray(tensors[2]).reshape(-1).astype(np.int64)
    if not len(boxes) == len(scores) == len(classes):
        raise OutputError(
            f"boxes, scores and classes disagree on the box count ({len(boxes)}, {len(scores)}, "
            f"{len(classes)})"
        )
    if reading.io.box_format == "xyxy_normalized":
        boxes = boxes * np.array([reading.io.width, reading.io.height] * 2, dtype=np.float64)
    return _Found(boxes, scores, classes)


def _found(tensors: Sequence[Tensor], reading: Reading) -> _Found:
    match reading.output_format:
        case OutputFormat.YOLO_RAW:
            return _yolo_raw(tensors[0], reading)
        case OutputFormat.YOLO_SEG:
            return _yolo_seg(tensors[0], tensors[1], reading)
        case OutputFormat.TORCHVISION:
            return _torchvision(tensors, reading)
        case OutputFormat.NMS_FREE:
            return _nms_free(tensors[0], reading)
        case _:
            return _boxes_scores_classes(tensors, reading)


def to_prediction(tensors: Sequence[Tensor], reading: Reading) -> Prediction:
    """`tensors`: the outputs of each of the format's roles (model_signature.roles order)."""
    if reading.detection_type == DetectionType.CLASSIFICATION:
        return classification(tensors[0], reading.output_format == OutputFormat.LOGITS, reading.labels)
    found = _found(tensors, reading)
    classes = _labelled(reading.labels, found.classes)
    if reading.detection_type == DetectionType.SEGMENTATION:
        if found.polygons is None:
            raise OutputError(f"output format {reading.output_format} gives no masks")
        kept = [i for i, polygon in enumerate(found.polygons) if polygon is not None]
        return SegmentationPrediction(
            polygons=[reading.placement.to_original(found.polygons[i]).tolist() for i in kept],
            classes=[classes[i] for i in kept],
            scores=_scores(found.scores[kept]),
        )
    pixels = reading.placement.to_original(found.boxes)
    pixels[:, 2] = np.maximum(pixels[:, 0], pixels[:, 2])
    pixels[:, 3] = np.maximum(pixels[:, 1], pixels[:, 3])
    return DetectionPrediction(
        boxes=[tuple(box) for box in pixels.tolist()], classes=classes, scores=_scores(found.scores)
    )
