"""How closely the shadow agreed with the champion on one image (pure): top-1 match for
classification, mean IoU of greedily matched boxes (same class) for detection."""

from __future__ import annotations

from schemas.predictions import Box, ClassificationPrediction, DetectionPrediction, Prediction


def iou(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    intersection = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union if union > 0 else 0.0


def box_agreement(champion: DetectionPrediction, shadow: DetectionPrediction) -> float:
    """Mean IoU over the union of both sides' boxes, matched greedily by IoU within a class; an
    unmatched box counts 0. Both empty: 1 (they agree that nothing is there)."""
    total = max(len(champion.boxes), len(shadow.boxes))
    if total == 0:
        return 1.0
    pairs = sorted(
        (
            (iou(cb, sb), i, j)
            for i, (cb, cc) in enumerate(zip(champion.boxes, champion.classes, strict=True))
            for j, (sb, sc) in enumerate(zip(shadow.boxes, shadow.classes, strict=True))
            if cc == sc
        ),
        reverse=True,
    )
    used_champion: set[int] = set()
    used_shadow: set[int] = set()
    matched = 0.0
    for overlap, i, j in pairs:
        if overlap > 0 and i not in used_champion and j not in used_shadow:
            used_champion.add(i)
            used_shadow.add(j)
            matched += overlap
    return matched / total


def agreement(champion: Prediction, shadow: Prediction) -> float | None:
    """In [0, 1]; None for detection types without a measure (segmentation)."""
    if isinstance(champion, ClassificationPrediction) and isinstance(shadow, ClassificationPrediction):
        if not champion.classes or not shadow.classes:
            return None
        return float(_top1(champion) == _top1(shadow))
    if isinstance(champion, DetectionPrediction) and isinstance(shadow, DetectionPrediction):
        return box_agreement(champion, shadow)
    return None


def _top1(prediction: ClassificationPrediction) -> str:
    return max(zip(prediction.scores, prediction.classes, strict=True))[1]
