"""Class-aware non-maximum suppression over numpy arrays (pure): a box suppresses the lower-scored boxes
of its class that overlap it more than the IoU threshold.

Greedy in descending score order across the classes, as the textbook version, but each kept box is
compared only with the rest of its own class (the candidates sorted by class, then score; a heap holds
each class's best box still standing), so a step costs the size of one class, not of every candidate."""

from __future__ import annotations

import heapq

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def nms(boxes: Floats, scores: Floats, classes: Ints, iou_threshold: float, max_detections: int) -> Ints:
    """The indices of the kept boxes [x1, y1, x2, y2], best score first, at most `max_detections`."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((-scores, classes))  # by class, then by score, best first
    ranked, x1, y1, x2, y2 = scores[order], *boxes[order].T
    areas = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    by_class = classes[order]
    starts = np.flatnonzero(np.r_[True, by_class[1:] != by_class[:-1]])
    ends = np.r_[starts[1:], len(order)]
    standing = np.ones(len(order), dtype=bool)
    heads = [(-ranked[start], int(start), int(end)) for start, end in zip(starts, ends, strict=True)]
    heapq.heapify(heads)
    keep: list[int] = []
    while heads and len(keep) < max_detections:
        _, best, end = heapq.heappop(heads)
        keep.append(int(order[best]))
        rest = slice(best + 1, end)
        width = np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])
        height = np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
        overlap = np.maximum(width, 0.0) * np.maximum(height, 0.0)
        union = areas[best] + areas[rest] - overlap
        iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        standing[rest] &= iou <= iou_threshold
        following = np.flatnonzero(standing[rest])
        if following.size:
            nxt = best + 1 + int(following[0])
            heapq.heappush(heads, (-ranked[nxt], nxt, end))
    return np.asarray(keep, dtype=np.int64)
