"""Champion and shadow against the reviews (pure): accuracy for classification, COCO AP/AP50/AR for
detection. The scoring stream publishes them as metrics; the api answers them in its comparison."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from schemas.predictions import ClassificationPrediction, DetectionPrediction, Prediction
from schemas.vocabulary import Role

from .coco import detection_quality


@dataclass(frozen=True)
class Reviewed:
    """A reviewed prediction: the review and what each role had answered (None: no shadow then)."""

    review: Prediction
    champion: Prediction
    shadow: Prediction | None


_PREDICTION: TypeAdapter[Prediction] = TypeAdapter(Prediction)


def stored_reviewed(row: dict[str, Any]) -> Reviewed:
    """A reviewed prediction from its stored JSON (`review`, `champion_prediction`, `shadow_prediction`)."""
    shadow = row.get("shadow_prediction")
    return Reviewed(
        review=_PREDICTION.validate_python(row["review"]),
        champion=_PREDICTION.validate_python(row["champion_prediction"]),
        shadow=_PREDICTION.validate_python(shadow) if shadow is not None else None,
    )


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
