"""Champion and shadow against the reviews: accuracy for classification, COCO AP/AP50/AR for detection,
over the most recent reviewed predictions of a deployment; and inference latency percentiles by role."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

import numpy as np

from schemas.predictions import ClassificationPrediction, DetectionPrediction, Prediction

from .coco import detection_quality


class Role(StrEnum):
    CHAMPION = "champion"
    SHADOW = "shadow"


@dataclass(frozen=True)
class Reviewed:
    """A reviewed prediction: the review and what each role had answered (None: no shadow then)."""

    review: Prediction
    champion: Prediction
    shadow: Prediction | None


def top_class(prediction: ClassificationPrediction) -> str | None:
    if not prediction.scores:
        return None
    return prediction.classes[int(np.argmax(prediction.scores))]


def role_quality(reviewed: list[Reviewed], role: Role) -> dict[str, float]:
    """The role's metrics over the reviewed predictions it answered; empty when it answered none or the
    detection type has no metric here (segmentation)."""
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
        coco = detection_quality(pairs)  # type: ignore[arg-type]
        metrics = {"ap": coco.ap, "ap50": coco.ap50, "ar": coco.ar}
        return {name: value for name, value in metrics.items() if value >= 0} | {
            "reviewed": float(len(pairs))
        }
    return {}


class LatencyWindows:
    """The last `size` inference latencies per deployment and role."""

    def __init__(self, size: int) -> None:
        self._windows: dict[tuple[UUID, Role], deque[float]] = defaultdict(lambda: deque(maxlen=size))

    def add(self, deployment_id: UUID, role: Role, latency_ms: float) -> None:
        self._windows[deployment_id, role].append(latency_ms)

    def percentiles(self, deployment_id: UUID, role: Role) -> tuple[float, float] | None:
        """(p50, p95) in milliseconds, or None before the first latency."""
        window = self._windows.get((deployment_id, role))
        if not window:
            return None
        p50, p95 = np.percentile(np.fromiter(window, dtype=float), [50.0, 95.0])
        return float(p50), float(p95)
