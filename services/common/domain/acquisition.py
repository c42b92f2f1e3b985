"""The review queue that teaches (pure): which TO_REVIEW prediction a person should look at first, the
random audit slice mixed into it, and quality figures the ordering does not bias.

The acquisition score is the weighted mean of the components a prediction has: champion uncertainty,
outlier score (once scoring has scored it) and champion-shadow disagreement (when a shadow answered), so
a missing component neither raises nor sinks a prediction. The database keeps it in
`predicted_assets.acquisition_score` and the queue's sort key in `queue_key` (migration 0013 writes the
same formulas as SQL functions, so a late outlier score or new weights re-rank the queue there; a test
holds the two equal).

The audit slice: a prediction is in it when `audit_draw(prediction_id)`, a number in [0, 1) fixed by the
id alone, is below the deployment's `audit_fraction`. Its queue key is `audit_draw / audit_fraction`, a
uniform number in [0, 1) that says nothing about the image, so the audit items a person reaches by going
down the queue are a uniform random sample of all predictions, whatever the other items' order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import numpy as np

from schemas.api.deployments import ReviewQueueSettings
from schemas.features import prediction_features
from schemas.predictions import ClassificationPrediction, Prediction
from schemas.vocabulary import Role

from .agreement import agreement
from .quality import Reviewed, role_quality


def uncertainty(prediction: Prediction, threshold: float, band: float) -> float:
    """In [0, 1]. Classification: 1 - margin (top-1 minus top-2 score, as the `top1_margin` feature).
    Detection and segmentation: the share of shapes scored within `band` of the confidence threshold
    (0 without shapes: nothing to be unsure about)."""
    if isinstance(prediction, ClassificationPrediction):
        return float(min(1.0, max(0.0, 1.0 - prediction_features(prediction)["top1_margin"])))
    scores = np.asarray(prediction.scores, dtype=np.float64)
    if scores.size == 0:
        return 0.0
    return float(np.mean(np.abs(scores - threshold) <= band))


def disagreement(champion: Prediction, shadow: Prediction | None) -> float | None:
    """1 - the shadow's agreement with the champion; None without a shadow or a measure."""
    agreed = agreement(champion, shadow) if shadow is not None else None
    return None if agreed is None else 1.0 - agreed


def acquisition_score(
    uncertainty: float | None,
    outlier: float | None,
    disagreement: float | None,
    settings: ReviewQueueSettings,
) -> float | None:
    """The weighted mean of the components present; None when none is (or all present weigh 0)."""
    pairs = [
        (settings.uncertainty_weight, uncertainty),
        (settings.outlier_weight, outlier),
        (settings.disagreement_weight, disagreement),
    ]
    weight = sum(w for w, value in pairs if value is not None)
    if weight == 0:
        return None
    return sum(w * value for w, value in pairs if value is not None) / weight


def audit_draw(prediction_id: UUID) -> float:
    """A number in [0, 1) fixed by the prediction id: the first 32 bits of md5 of its text form (what
    Postgres' md5() gives, so the database draws the same number)."""
    return int(hashlib.md5(str(prediction_id).encode()).hexdigest()[:8], 16) / 2**32


def in_audit(prediction_id: UUID, fraction: float) -> bool:
    return audit_draw(prediction_id) < fraction


def queue_key(prediction_id: UUID, score: float | None, fraction: float) -> float | None:
    """The queue's sort key, highest first: the acquisition score, or for the audit slice a uniform
    number in [0, 1) drawn from the id (the slice spread through the queue regardless of content)."""
    draw = audit_draw(prediction_id)
    return draw / fraction if draw < fraction else score


@dataclass(frozen=True)
class AuditedReview:
    prediction_id: UUID
    reviewed: Reviewed


def audit_quality(reviews: Sequence[AuditedReview], fraction: float, role: Role) -> dict[str, float]:
    """The role's quality on the reviewed predictions of the audit slice only: a uniform random sample of
    the deployment's predictions, so its accuracy (or AP/AR) estimates the production figure without the
    bias of a queue that puts the hard images first. Empty when no audited prediction is reviewed."""
    return role_quality([r.reviewed for r in reviews if in_audit(r.prediction_id, fraction)], role)
