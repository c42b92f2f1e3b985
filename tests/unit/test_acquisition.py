"""The review queue's pure rules: acquisition score, audit slice, image hash, unbiased quality."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from schemas.api.deployments import ReviewQueueSettings
from schemas.features import image_dhash
from schemas.predictions import ClassificationPrediction, DetectionPrediction
from schemas.vocabulary import Role
from services.common.domain.acquisition import (
    AuditedReview,
    acquisition_score,
    audit_draw,
    audit_quality,
    disagreement,
    in_audit,
    queue_key,
    uncertainty,
)
from services.common.domain.quality import Reviewed, role_quality
from tests.samples import hashable_picture


def label(name: str, confidence: float = 0.9) -> ClassificationPrediction:
    others = [c for c in ("cat", "dog", "cow") if c != name]
    rest = (1 - confidence) / 2
    return ClassificationPrediction(classes=[name, *others], scores=[confidence, rest, rest])


def boxes(scores: list[float]) -> DetectionPrediction:
    return DetectionPrediction(
        classes=["cat"] * len(scores), scores=scores, boxes=[[0, 0, 10, 10]] * len(scores)
    )


def test_classification_uncertainty_is_one_minus_the_margin() -> None:
    assert uncertainty(label("cat", 0.9), 0.0, 0.1) == pytest.approx(1 - (0.9 - 0.05))
    sure, torn = ClassificationPrediction(classes=["a", "b"], scores=[1.0, 0.0]), label("cat", 0.4)
    assert uncertainty(sure, 0.0, 0.1) == 0.0
    assert uncertainty(torn, 0.0, 0.1) == pytest.approx(1 - (0.4 - 0.3))


def test_detection_uncertainty_is_the_share_of_boxes_near_the_threshold() -> None:
    assert uncertainty(boxes([0.55, 0.95, 0.45, 0.2]), 0.5, 0.1) == 0.5
    assert uncertainty(boxes([0.55, 0.95, 0.45, 0.2]), 0.5, 0.01) == 0.0
    assert uncertainty(boxes([]), 0.5, 0.1) == 0.0


def test_disagreement_needs_a_shadow() -> None:
    assert disagreement(label("cat"), None) is None
    assert disagreement(label("cat"), label("cat", 0.6)) == 0.0
    assert disagreement(label("cat"), label("dog")) == 1.0
    assert disagreement(boxes([0.9]), boxes([0.8])) == 0.0


def test_acquisition_score_is_the_weighted_mean_of_what_is_present() -> None:
    weights = ReviewQueueSettings(uncertainty_weight=1.0, outlier_weight=3.0, disagreement_weight=0.0)
    assert acquisition_score(0.2, 0.6, 1.0, weights) == pytest.approx((0.2 + 3 * 0.6) / 4)
    assert acquisition_score(0.2, None, 1.0, weights) == pytest.approx(0.2)  # no outlier score yet
    assert acquisition_score(None, None, 1.0, weights) is None  # disagreement alone weighs nothing
    assert acquisition_score(None, None, None, ReviewQueueSettings()) is None


def test_settings_refuse_all_weights_zero() -> None:
    with pytest.raises(ValueError, match="at least one weight"):
        ReviewQueueSettings(uncertainty_weight=0, outlier_weight=0, disagreement_weight=0)


def test_the_audit_slice_is_a_fixed_fraction_of_ids() -> None:
    ids = [uuid.UUID(int=int(n)) for n in np.random.default_rng(1).integers(0, 2**62, 20_000)]
    draws = np.array([audit_draw(i) for i in ids])
    assert ((draws >= 0) & (draws < 1)).all()
    assert [audit_draw(i) for i in ids[:50]] == list(draws[:50])  # the same id, the same draw
    chosen = np.mean([in_audit(i, 0.05) for i in ids])
    assert abs(chosen - 0.05) < 4 * np.sqrt(0.05 * 0.95 / len(ids))
    # Nested: raising the fraction keeps every prediction already audited.
    assert all(in_audit(i, 0.1) for i in ids if in_audit(i, 0.05))
    assert not any(in_audit(i, 0.0) for i in ids)


def test_queue_key_spreads_the_audit_slice_and_keeps_the_score_of_the_rest() -> None:
    ids = [uuid.UUID(int=n) for n in range(2000)]
    audited = [i for i in ids if in_audit(i, 0.05)]
    keys = [queue_key(i, 0.99, 0.05) for i in audited]
    assert audited and all(k is not None and 0 <= k < 1 for k in keys)
    assert max(keys) > 0.5 > min(keys)  # spread through the queue, not bunched at one end
    assert all(queue_key(i, 0.3, 0.05) == 0.3 for i in ids if i not in set(audited))


def test_dhash_finds_near_duplicates_and_tells_others_apart() -> None:
    first = hashable_picture(0)
    assert len(image_dhash(first)) == 16
    brighter = np.clip(first.astype(int) + 6, 0, 255).astype(np.uint8)
    bigger = np.repeat(np.repeat(first, 3, axis=0), 3, axis=1)
    noisy = np.clip(first + np.random.default_rng(9).integers(-2, 3, first.shape), 0, 255).astype(np.uint8)
    assert image_dhash(brighter) == image_dhash(bigger) == image_dhash(noisy) == image_dhash(first)
    assert len({image_dhash(hashable_picture(seed)) for seed in range(50)}) == 50
    assert len(image_dhash(first[:3, :4])) == 16  # smaller than the hash's grid


def test_audit_slice_estimate_is_unbiased_where_outlier_ordered_reviews_are_not() -> None:
    """A simulated queue: the champion errs more on outlying images; people review the top 20 % of a
    queue ordered by outlier score. Plain accuracy over those reviews is far below production's; the
    audit slice's is not."""
    rng = np.random.default_rng(7)
    n, fraction = 100_000, 0.05
    ids = [uuid.UUID(int=int(v)) for v in rng.integers(0, 2**62, n)]
    outlier = rng.uniform(0, 1, n)
    correct = rng.uniform(0, 1, n) < 0.95 - 0.6 * outlier
    true_accuracy = correct.mean()
    keys = np.array([queue_key(i, float(o), fraction) for i, o in zip(ids, outlier, strict=True)])
    reviewed = np.argsort(-keys, kind="stable")[: n // 5]
    right, wrong = label("cat"), label("dog")
    reviews = [
        AuditedReview(ids[k], Reviewed(review=right, champion=right if correct[k] else wrong, shadow=None))
        for k in reviewed
    ]
    plain = role_quality([r.reviewed for r in reviews], Role.CHAMPION)
    audited = audit_quality(reviews, fraction, Role.CHAMPION)
    assert audited["reviewed"] > 500  # the slice mixed into the reviewed part of the queue
    assert true_accuracy - plain["accuracy"] > 0.15  # the ordering's bias
    assert abs(audited["accuracy"] - true_accuracy) < 4 * np.sqrt(0.25 / audited["reviewed"])
