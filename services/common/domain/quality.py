"""Champion and shadow against the reviews (pure): accuracy for classification, COCO AP/AP50/AR for
detection, and for segmentation the same of the polygons' boxes beside the masks' (mask_ap, mask_ap50,
mask_ar). The scoring stream publishes them as metrics; the api answers them in its comparison."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from schemas.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    Prediction,
    SegmentationPrediction,
)
from schemas.vocabulary import Role

from .coco import CocoQuality, detection_quality, mask_quality, segmentation_box_quality
from .deployments import RoleAnswers

_PREDICTION: TypeAdapter[Prediction] = TypeAdapter(Prediction)


@dataclass(frozen=True)
class Reviewed:
    """A reviewed prediction: the review and what each role had answered (None: no shadow then)."""

    review: Prediction
    champion: Prediction
    shadow: Prediction | None


def stored_reviewed(row: Mapping[str, Any]) -> Reviewed:
    """A reviewed prediction from its stored JSON (`review`, `champion_prediction`, `shadow_prediction`)."""
    shadow = row.get("shadow_prediction")
    return Reviewed(
        review=_PREDICTION.validate_python(row["review"]),
        champion=_PREDICTION.validate_python(row["champion_prediction"]),
        shadow=_PREDICTION.validate_python(shadow) if shadow is not None else None,
    )


def reviewed_answers(answers: list[RoleAnswers]) -> list[Reviewed]:
    """The reviewed ones among a deployment's stored answers, read as predictions."""
    return [stored_reviewed(asdict(a)) for a in answers if a.review is not None]


def latency_percentiles(latencies: list[float]) -> tuple[float | None, float | None]:
    """p50 and p95 in ms; None without latencies."""
    if not latencies:
        return None, None
    p50, p95 = np.percentile(np.asarray(latencies, dtype=float), [50.0, 95.0])
    return float(p50), float(p95)


def top_class(prediction: ClassificationPrediction) -> str | None:
    if not prediction.scores:
        return None
    return prediction.classes[int(np.argmax(prediction.scores))]


def _coco(quality: CocoQuality, prefix: str = "") -> dict[str, float]:
    """The figures pycocotools would print, named; none of those it reports as -1 (no ground truth)."""
    metrics = {"ap": quality.ap, "ap50": quality.ap50, "ar": quality.ar}
    return {prefix + name: value for name, value in metrics.items() if value >= 0}


def role_quality(reviewed: list[Reviewed], role: Role) -> dict[str, float]:
    """The role's metrics over the reviewed predictions it answered; empty when it answered none or the
    review and the answers are of different detection types."""
    pairs = [
        (r.review, answer) for r in reviewed if (answer := r.champion if role is Role.CHAMPION else r.shadow)
    ]
    if not pairs:
        return {}
    if all(
        isinstance(a, ClassificationPrediction) and isinstance(r, ClassificationPrediction) for r, a in pairs
    ):
        hits = [top_class(answer) == top_class(review) for review, answer in pairs]  # type: ignore[arg-type]
        return {"accuracy": float(np.mean(hits)), "reviewed": float(len(pairs))}
    if all(isinstance(a, DetectionPrediction) and isinstance(r, DetectionPrediction) for r, a in pairs):
        return _coco(detection_quality(pairs)) | {"reviewed": float(len(pairs))}  # type: ignore[arg-type]
    if all(isinstance(a, SegmentationPrediction) and isinstance(r, SegmentationPrediction) for r, a in pairs):
        boxes = _coco(segmentation_box_quality(pairs))  # type: ignore[arg-type]
        return boxes | _coco(mask_quality(pairs), "mask_") | {"reviewed": float(len(pairs))}  # type: ignore[arg-type]
    return {}
