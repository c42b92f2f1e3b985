"""COCO's detection metrics (AP@[.5:.95], AP50, AR@100) with pycocotools' definitions, over a set of
reviewed images: the review is the ground truth, a model's prediction the detections.

As COCOeval with iouType="bbox", areaRng "all" and maxDets 100: detections are matched greedily in
descending score order to the unmatched ground truth box of highest IoU at each threshold 0.50:0.05:0.95;
precision is made monotone and read at 101 recall points; a class without ground truth boxes is left out
of the means; AR is the recall reached with 100 detections per image.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from schemas.predictions import DetectionPrediction

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100


@dataclass(frozen=True)
class DetectionQuality:
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


def detection_quality(pairs: list[tuple[DetectionPrediction, DetectionPrediction]]) -> DetectionQuality:
    """COCO metrics of (review, prediction) pairs, one pair per image."""
    truths: dict[str, int] = defaultdict(int)
    scores: dict[str, list[float]] = defaultdict(list)
    matched: dict[str, list[np.ndarray]] = defaultdict(list)
    for review, prediction in pairs:
        for label in set(review.classes) | set(prediction.classes):
            gt = np.array([b for b, c in zip(review.boxes, review.classes, strict=True) if c == label])
            dt_all = [
                (s, b)
                for s, b, c in zip(prediction.scores, prediction.boxes, prediction.classes, strict=True)
                if c == label
            ]
            order = np.argsort([-s for s, _ in dt_all], kind="mergesort")[:MAX_DETECTIONS]
            dt = np.array([dt_all[i][1] for i in order]).reshape(-1, 4)
            truths[label] += len(gt)
            scores[label] += [dt_all[i][0] for i in order]
            matched[label].append(_match(box_iou(dt, gt.reshape(-1, 4))))
    precisions, recalls = [], []
    for label, count in truths.items():
        if count == 0:
            continue
        precision, recall = _precision_recall(scores[label], matched[label], count)
        precisions.append(precision)
        recalls.append(recall)
    if not precisions:
        return DetectionQuality(-1.0, -1.0, -1.0)
    stacked = np.stack(precisions)  # class x threshold x recall point
    return DetectionQuality(
        ap=float(stacked.mean()), ap50=float(stacked[:, 0, :].mean()), ar=float(np.mean(recalls))
    )
