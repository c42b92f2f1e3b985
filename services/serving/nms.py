"""Class-aware non-maximum suppression over numpy arrays (pure): a box suppresses the lower-scored boxes
of its class that overlap it more than the IoU threshold."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def nms(boxes: Floats, scores: Floats, classes: Ints, iou_threshold: float, max_detections: int) -> Ints:
    """The indices of the kept boxes [x1, y1, x2, y2], best score first, at most `max_detections`."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    # Shifting each class by more than every box's extent keeps boxes of different classes apart.
    shift = (np.abs(boxes).max() * 2 + 1) * classes.astype(np.float64)
    x1, y1, x2, y2 = (boxes + shift[:, np.newaxis]).T
    areas = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_detections:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        width = np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])
        height = np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
        overlap = np.maximum(width, 0.0) * np.maximum(height, 0.0)
        union = areas[best] + areas[rest] - overlap
        iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
