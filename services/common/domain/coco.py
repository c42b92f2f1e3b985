"""COCO's detection metrics (AP@[.5:.95], AP50, AR@100) with pycocotools' definitions, over a set of
reviewed images: the review is the ground truth, a model's prediction the detections; of boxes (iouType
"bbox") or of polygons (iouType "segm": the IoU of the pixels pycocotools' rasterisation fills, see
`polygons.rasterise`, so the figures are its own).

As COCOeval with areaRng "all" and maxDets 100: detections are matched greedily in
descending score order to the unmatched ground truth box of highest IoU at each threshold 0.50:0.05:0.95;
precision is made monotone and read at 101 recall points; a class without ground truth boxes is left out
of the means; AR is the recall reached with 100 detections per image.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.predictions import DetectionPrediction, SegmentationPrediction

from .polygons import Raster, rasterise

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100


@dataclass(frozen=True)
class CocoQuality:
    ap: float  # AP@[.5:.95]; -1 when no image has a ground truth box (as pycocotools)
    ap50: float
    ar: float  # AR@100


def box_iou(detections: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """IoU of every [xmin, ymin, xmax, ymax] detection with every ground truth box."""
    if detections.size == 0 or truths.size == 0:
        return np.zeros((len(detections), len(truths)))
    d, t = detections[:, None, :], truths[None, :, :]
    width = np.clip(np.minimum(d[..., 2], t[..., 2]) - np.maximum(d[..., 0], t[..., 0]), 0.0, None)
    height = np.clip(np.minimum(d[..., 3], t[..., 3]) - np.maximum(d[..., 1], t[..., 1]), 0.0, None)
    inter = width * height
    area_d = (d[..., 2] - d[..., 0]) * (d[..., 3] - d[..., 1])
    area_t = (t[..., 2] - t[..., 0]) * (t[..., 3] - t[..., 1])
    return inter / (area_d + area_t - inter)


def mask_iou(detections: Sequence[Raster], truths: Sequence[Raster]) -> np.ndarray:
    """IoU of every detection's pixels with every ground truth's (0 when both are empty), rasterised
    polygons each cropped to its box: two are compared where their boxes meet only."""
    ious = np.zeros((len(detections), len(truths)))
    areas_t = [int(np.count_nonzero(mt)) for _, _, mt in truths]
    for d, (dx, dy, md) in enumerate(detections):
        area_d = int(np.count_nonzero(md))
        for t, (tx, ty, mt) in enumerate(truths):
            x0, y0 = max(dx, tx), max(dy, ty)
            x1, y1 = min(dx + md.shape[0], tx + mt.shape[0]), min(dy + md.shape[1], ty + mt.shape[1])
            inter = 0
            if x0 < x1 and y0 < y1:
                overlap = md[x0 - dx : x1 - dx, y0 - dy : y1 - dy] & mt[x0 - tx : x1 - tx, y0 - ty : y1 - ty]
                inter = int(np.count_nonzero(overlap))
            union = area_d + areas_t[t] - inter
            ious[d, t] = inter / union if union else 0.0
    return ious


def _match(ious: np.ndarray) -> np.ndarray:
    """matched[t, d]: whether detection d (in score order) found a ground truth box at threshold t."""
    matched = np.zeros((len(IOU_THRESHOLDS), ious.shape[0]), dtype=bool)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(ious.shape[1], dtype=bool)
        for d in range(ious.shape[0]):
            best, best_iou = -1, min(threshold, 1 - 1e-10)
            for g in range(ious.shape[1]):
                if taken[g] or ious[d, g] < best_iou:
                    continue
                best, best_iou = g, ious[d, g]
            if best >= 0:
                taken[best] = True
                matched[t, d] = True
    return matched


def _precision_recall(
    scores: list[float], matched: list[np.ndarray], truths: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per IoU threshold: precision at the recall points and the final recall of one class."""
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    hits = np.concatenate(matched, axis=1)[:, order] if matched else np.zeros((len(IOU_THRESHOLDS), 0), bool)
    precision = np.zeros((len(IOU_THRESHOLDS), len(RECALL_POINTS)))
    recall = np.zeros(len(IOU_THRESHOLDS))
    for t in range(len(IOU_THRESHOLDS)):
        tp = np.cumsum(hits[t]).astype(float)
        fp = np.cumsum(~hits[t]).astype(float)
        rc = tp / truths
        pr = tp / (fp + tp + np.spacing(1))
        recall[t] = rc[-1] if rc.size else 0.0
        pr = np.maximum.accumulate(pr[::-1])[
            ::-1
        ]  # precision envelope: best precision at this recall or more
        at = np.searchsorted(rc, RECALL_POINTS, side="left")
        valid = at < pr.size
        precision[t, valid] = pr[at[valid]]
    return precision, recall


# A prediction as the metrics read it: classes, scores and the shapes parallel to them.
Shaped = tuple[list[str], list[float], list[Any]]


# One image's evidence per class: its detections' scores (score order, at most MAX_DETECTIONS), which of
# them matched at each IoU threshold, and its ground-truth count. Images are independent until the
# per-class precision/recall, so a resample of images (the promotion gate's bootstrap) reuses them.
ImageMatches = dict[str, tuple[list[float], np.ndarray, int]]


def _image_matches(truth: Shaped, predicted: Shaped, iou: Callable[[list, list], np.ndarray]) -> ImageMatches:
    """The matching of one image's detected shapes to its true ones, class by class."""
    (true_classes, _, true_shapes), (classes, confidences, shapes) = truth, predicted
    found: ImageMatches = {}
    for label in set(true_classes) | set(classes):
        gt = [s for s, c in zip(true_shapes, true_classes, strict=True) if c == label]
        dt_all = [(score, s) for score, s, c in zip(confidences, shapes, classes, strict=True) if c == label]
        order = np.argsort([-score for score, _ in dt_all], kind="mergesort")[:MAX_DETECTIONS]
        found[label] = (
            [dt_all[i][0] for i in order],
            _match(iou([dt_all[i][1] for i in order], gt)),
            len(gt),
        )
    return found


def _quality_of(images: Sequence[ImageMatches]) -> CocoQuality:
    """COCO metrics over the images' matches."""
    truths: dict[str, int] = defaultdict(int)
    scores: dict[str, list[float]] = defaultdict(list)
    matched: dict[str, list[np.ndarray]] = defaultdict(list)
    for image in images:
        for label, (label_scores, label_matched, label_truths) in image.items():
            truths[label] += label_truths
            scores[label] += label_scores
            matched[label].append(label_matched)
    precisions, recalls = [], []
    for label, count in truths.items():
        if count == 0:
            continue
        precision, recall = _precision_recall(scores[label], matched[label], count)
        precisions.append(precision)
        recalls.append(recall)
    if not precisions:
        return CocoQuality(-1.0, -1.0, -1.0)
    stacked = np.stack(precisions)  # class x threshold x recall point
    return CocoQuality(
        ap=float(stacked.mean()), ap50=float(stacked[:, 0, :].mean()), ar=float(np.mean(recalls))
    )


def _quality(pairs: Sequence[tuple[Shaped, Shaped]], iou: Callable[[list, list], np.ndarray]) -> CocoQuality:
    """COCO metrics of (review, prediction) pairs, one pair per image; `iou` compares a list of detected
    shapes with a list of true ones."""
    return _quality_of([_image_matches(truth, predicted, iou) for truth, predicted in pairs])


def _box_iou(detections: list, truths: list) -> np.ndarray:
    return box_iou(
        np.array(detections, dtype=float).reshape(-1, 4), np.array(truths, dtype=float).reshape(-1, 4)
    )


def _boxes(prediction: DetectionPrediction) -> Shaped:
    return prediction.classes, prediction.scores, prediction.boxes


def _box_matches(pairs: Sequence[tuple[DetectionPrediction, DetectionPrediction]]) -> list[ImageMatches]:
    return [_image_matches(_boxes(r), _boxes(p), _box_iou) for r, p in pairs]


def detection_quality(pairs: Sequence[tuple[DetectionPrediction, DetectionPrediction]]) -> CocoQuality:
    """COCO box metrics (iouType "bbox") of (review, prediction) pairs, one pair per image."""
    return _quality_of(_box_matches(pairs))


def polygon_box(polygon: Sequence[tuple[float, float]]) -> tuple[float, float, float, float]:
    """The [xmin, ymin, xmax, ymax] box around a polygon."""
    xs, ys = zip(*polygon, strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def segmentation_box_quality(
    pairs: Sequence[tuple[SegmentationPrediction, SegmentationPrediction]],
) -> CocoQuality:
    """COCO box metrics of polygons, on the boxes around them."""

    def boxed(p: SegmentationPrediction) -> Shaped:
        return p.classes, p.scores, [polygon_box(polygon) for polygon in p.polygons]

    return _quality([(boxed(r), boxed(p)) for r, p in pairs], _box_iou)


def _mask_matches(
    pairs: Sequence[tuple[SegmentationPrediction, SegmentationPrediction]],
) -> list[ImageMatches]:
    """Every polygon is rasterised in one call (a call per polygon would cost more than the pixels)."""
    polygons = [np.asarray(p, dtype=np.float64) for pair in pairs for answer in pair for p in answer.polygons]
    rasters = iter(rasterise(polygons))

    def masked(p: SegmentationPrediction) -> Shaped:
        return p.classes, p.scores, [next(rasters) for _ in p.polygons]

    return [_image_matches(masked(r), masked(p), mask_iou) for r, p in pairs]


def mask_quality(pairs: Sequence[tuple[SegmentationPrediction, SegmentationPrediction]]) -> CocoQuality:
    """COCO mask metrics (iouType "segm") of (review, prediction) pairs, one pair per image."""
    return _quality_of(_mask_matches(pairs))


@dataclass(frozen=True)
class _ClassHits:
    hits: np.ndarray  # threshold x detection: every image's detections of the class, by descending score
    image: np.ndarray  # the image of each detection
    truths: np.ndarray  # the class's ground-truth boxes in each image


class WeightedAP:
    """AP@[.5:.95] of a set of images each counted a whole number of times (a bootstrap resample: how
    often each image was drawn), matching every image once. Equal to `detection_quality` (`boxes`) or
    `mask_quality` (`masks`) of the images repeated by their weights, but for the order of equal scores
    in different images; a resample costs a few cumulative sums per class instead of matching every image
    again."""

    @classmethod
    def boxes(cls, pairs: Sequence[tuple[DetectionPrediction, DetectionPrediction]]) -> WeightedAP:
        return cls(_box_matches(pairs))

    @classmethod
    def masks(cls, pairs: Sequence[tuple[SegmentationPrediction, SegmentationPrediction]]) -> WeightedAP:
        return cls(_mask_matches(pairs))

    def __init__(self, images: Sequence[ImageMatches]) -> None:
        self.size = len(images)
        self.classes: list[_ClassHits] = []
        for label in sorted({label for image in images for label in image}):
            scores: list[float] = []
            matched: list[np.ndarray] = []
            owner: list[int] = []
            truths = np.zeros(self.size, dtype=int)
            for index, image in enumerate(images):
                if label in image:
                    label_scores, label_matched, label_truths = image[label]
                    scores += label_scores
                    matched.append(label_matched)
                    owner += [index] * len(label_scores)
                    truths[index] = label_truths
            order = np.argsort(-np.asarray(scores), kind="mergesort")
            hits = np.concatenate(matched, axis=1)[:, order]
            self.classes.append(_ClassHits(hits, np.asarray(owner, dtype=int)[order], truths))

    def ap(self, weights: np.ndarray) -> float:
        """-1 when the weighted images hold no ground-truth box (as pycocotools)."""
        precisions = []
        for evidence in self.classes:
            total = float(weights @ evidence.truths)
            if total == 0:
                continue
            w = weights[evidence.image].astype(float)
            tp = np.cumsum(evidence.hits * w, axis=1)
            fp = np.cumsum(~evidence.hits * w, axis=1)
            recall = tp / total
            precision = np.maximum.accumulate((tp / (tp + fp + np.spacing(1)))[:, ::-1], axis=1)[:, ::-1]
            at_points = np.zeros((len(IOU_THRESHOLDS), len(RECALL_POINTS)))
            for t in range(len(IOU_THRESHOLDS)):
                at = np.searchsorted(recall[t], RECALL_POINTS, side="left")
                valid = at < precision.shape[1]
                at_points[t, valid] = precision[t, at[valid]]
            precisions.append(at_points)
        return float(np.mean(precisions)) if precisions else -1.0
