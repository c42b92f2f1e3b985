"""The promotion gate's statistics and decisions (pure): McNemar's exact test against scipy, the paired
bootstrap over images for detection AP, and the gate and watch decisions on constructed cases."""

from __future__ import annotations

import random

import pytest
from scipy.stats import binomtest

from schemas.predictions import ClassificationPrediction, DetectionPrediction, SegmentationPrediction
from schemas.vocabulary import GateOutcome, GateReason
from services.common.domain.coco import WeightedAP
from services.common.domain.promotion import GateSettings, gate, mcnemar_exact, paired_bootstrap, watch
from services.common.domain.quality import Reviewed

SETTINGS = GateSettings(
    min_pairs=50, level=0.05, latency_p95_budget_ms=100.0, watch_reviews=80, bootstrap_resamples=200
)


def top(label: str) -> ClassificationPrediction:
    other = "b" if label == "a" else "a"
    return ClassificationPrediction(classes=[label, other], scores=[0.9, 0.1])


def classification(
    champion_right: int, shadow_right: int, both_right: int, both_wrong: int
) -> list[Reviewed]:
    """Reviews (truth "a") where only the champion, only the shadow, both or neither answered right."""
    right, wrong = top("a"), top("b")
    rows = (
        [(right, wrong)] * champion_right
        + [(wrong, right)] * shadow_right
        + [(right, right)] * both_right
        + [(wrong, wrong)] * both_wrong
    )
    random.Random(0).shuffle(rows)
    return [Reviewed(review=right, champion=c, shadow=s) for c, s in rows]


@pytest.mark.parametrize(
    ("incumbent_only", "challenger_only"),
    [(0, 0), (0, 1), (3, 3), (5, 25), (25, 5), (40, 60), (1, 0), (700, 800), (1500, 1600)],
)
def test_mcnemar_exact_equals_scipy_binomial_test(incumbent_only: int, challenger_only: int) -> None:
    n = incumbent_only + challenger_only
    expected = binomtest(challenger_only, n, 0.5, alternative="greater").pvalue if n else 1.0
    assert mcnemar_exact(incumbent_only, challenger_only) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_a_clearly_better_shadow_is_promoted() -> None:
    decision = gate(classification(5, 25, 50, 20), shadow_p95_ms=40.0, settings=SETTINGS)
    assert (decision.outcome, decision.reason) == (GateOutcome.PROMOTED, GateReason.BETTER)
    assert decision.pairs == 100 and decision.metric == "accuracy"
    assert decision.champion_value == pytest.approx(0.55) and decision.shadow_value == pytest.approx(0.75)
    assert decision.p_value == pytest.approx(binomtest(25, 30, 0.5, alternative="greater").pvalue)
    assert "p95 latency 40.0 ms" in decision.message


def test_a_clearly_worse_shadow_stays_shadow() -> None:
    decision = gate(classification(25, 5, 50, 20), shadow_p95_ms=40.0, settings=SETTINGS)
    assert (decision.outcome, decision.reason) == (GateOutcome.HELD, GateReason.NOT_BETTER)
    assert decision.p_value is not None and decision.p_value > 0.99


def test_better_but_not_significantly_stays_shadow() -> None:
    decision = gate(classification(10, 14, 50, 26), shadow_p95_ms=40.0, settings=SETTINGS)
    assert decision.shadow_value is not None and decision.champion_value is not None
    assert decision.shadow_value > decision.champion_value
    assert (decision.outcome, decision.reason) == (GateOutcome.HELD, GateReason.NOT_BETTER)


def test_too_few_pairs_decide_nothing_however_better() -> None:
    decision = gate(classification(0, 30, 10, 0), shadow_p95_ms=40.0, settings=SETTINGS)
    assert (decision.outcome, decision.reason) == (GateOutcome.HELD, GateReason.TOO_FEW_PAIRS)
    assert decision.message == "40 paired reviewed predictions of the 50 needed"


def test_reviews_without_a_shadow_answer_are_not_pairs() -> None:
    reviewed = classification(5, 25, 50, 20)
    lone = [Reviewed(review=top("a"), champion=top("a"), shadow=None)] * 100
    assert gate(reviewed[:40] + lone, 40.0, SETTINGS).reason is GateReason.TOO_FEW_PAIRS


def test_a_better_but_slow_shadow_stays_shadow() -> None:
    reviewed = classification(5, 25, 50, 20)
    assert gate(reviewed, shadow_p95_ms=150.0, settings=SETTINGS).reason is GateReason.TOO_SLOW
    assert gate(reviewed, shadow_p95_ms=None, settings=SETTINGS).reason is GateReason.TOO_SLOW


def test_no_pair_yet_holds_or_watches_without_figures() -> None:
    lone = [Reviewed(review=top("a"), champion=top("a"), shadow=None)]
    held = gate(lone, 40.0, SETTINGS)
    assert (held.outcome, held.reason, held.pairs, held.metric, held.p_value) == (
        GateOutcome.HELD,
        GateReason.TOO_FEW_PAIRS,
        0,
        None,
        None,
    )
    waiting = watch([], SETTINGS)
    assert (waiting.outcome, waiting.pairs, waiting.champion_value) == (GateOutcome.WATCHING, 0, None)


def test_watch_rolls_back_keeps_or_waits() -> None:
    # After a promotion the shadow is the previous champion: it being better means rolling back.
    rolled = watch(classification(5, 25, 30, 0), SETTINGS)
    assert (rolled.outcome, rolled.reason) == (GateOutcome.ROLLED_BACK, GateReason.PREVIOUS_BETTER)
    kept = watch(classification(10, 10, 60, 0), SETTINGS)
    assert (kept.outcome, kept.reason) == (GateOutcome.KEPT, GateReason.WATCH_PASSED)
    waiting = watch(classification(10, 10, 30, 0), SETTINGS)
    assert (waiting.outcome, waiting.reason) == (GateOutcome.WATCHING, GateReason.WATCHING)
    assert waiting.message == "watching the promotion: 50 of 80 paired reviews"


BOX = [10.0, 10.0, 30.0, 30.0]
MISS = [40.0, 40.0, 60.0, 60.0]


def detection(right: bool, score: float) -> DetectionPrediction:
    return DetectionPrediction(classes=["x"], scores=[score], boxes=[BOX if right else MISS])


def detection_reviews(champion_hits: list[bool], shadow_hits: list[bool]) -> list[Reviewed]:
    truth = DetectionPrediction(classes=["x"], scores=[1.0], boxes=[BOX])
    return [
        Reviewed(review=truth, champion=detection(c, 0.5 + i / 1000), shadow=detection(s, 0.5 + i / 997))
        for i, (c, s) in enumerate(zip(champion_hits, shadow_hits, strict=True))
    ]


def hits(n: int, every: int) -> list[bool]:
    return [i % every != 0 for i in range(n)]


def test_bootstrap_promotes_a_clearly_better_detector() -> None:
    reviewed = detection_reviews(hits(80, 2), hits(80, 10))  # 50 % vs 90 % of the boxes found
    decision = gate(reviewed, shadow_p95_ms=40.0, settings=SETTINGS)
    assert (decision.outcome, decision.metric, decision.pairs) == (GateOutcome.PROMOTED, "ap", 80)
    assert decision.shadow_value is not None and decision.champion_value is not None
    assert decision.shadow_value > decision.champion_value
    assert decision.p_value == pytest.approx(1 / 201)  # no resample where the shadow was not better


def test_bootstrap_holds_a_clearly_worse_detector_and_too_few_images() -> None:
    worse = gate(detection_reviews(hits(80, 10), hits(80, 2)), shadow_p95_ms=40.0, settings=SETTINGS)
    assert (worse.outcome, worse.reason) == (GateOutcome.HELD, GateReason.NOT_BETTER)
    assert worse.p_value is not None and worse.p_value > 0.95
    few = gate(detection_reviews(hits(20, 2), hits(20, 10)), shadow_p95_ms=40.0, settings=SETTINGS)
    assert (few.outcome, few.reason) == (GateOutcome.HELD, GateReason.TOO_FEW_PAIRS)


def test_bootstrap_is_seeded_and_equal_detectors_are_not_better() -> None:
    reviewed = detection_reviews(hits(60, 3), hits(60, 3))
    pairs_c = [(r.review, r.champion) for r in reviewed]
    pairs_s = [(r.review, r.shadow) for r in reviewed]
    champion, shadow = WeightedAP.boxes(pairs_c), WeightedAP.boxes(pairs_s)  # type: ignore[arg-type]
    first = paired_bootstrap(champion, shadow, 100, seed=7)
    assert paired_bootstrap(champion, shadow, 100, seed=7) == first
    assert first[2] > 0.05  # the same hits: never proven better


SQUARE = [(10.0, 10.0), (30.0, 10.0), (30.0, 30.0), (10.0, 30.0)]
NOTCHED = [(10.0, 10.0), (30.0, 10.0), (30.0, 30.0), (20.0, 30.0), (20.0, 20.0), (10.0, 20.0)]  # 3/4 of it


def segmentation_reviews(champion_right: list[bool], shadow_right: list[bool]) -> list[Reviewed]:
    """Every answer's box is the truth's; a wrong one's outline misses a quarter of the mask (mask IoU
    0.75): only mask AP tells them apart."""
    truth = SegmentationPrediction(classes=["x"], scores=[1.0], polygons=[SQUARE])

    def answer(right: bool, score: float) -> SegmentationPrediction:
        polygon = SQUARE if right else NOTCHED
        return SegmentationPrediction(classes=["x"], scores=[score], polygons=[polygon])

    return [
        Reviewed(review=truth, champion=answer(c, 0.5 + i / 1000), shadow=answer(s, 0.5 + i / 997))
        for i, (c, s) in enumerate(zip(champion_right, shadow_right, strict=True))
    ]


def test_the_gate_measures_segmentation_by_mask_ap() -> None:
    better = gate(segmentation_reviews(hits(80, 2), hits(80, 10)), shadow_p95_ms=40.0, settings=SETTINGS)
    assert (better.outcome, better.reason, better.metric) == (
        GateOutcome.PROMOTED,
        GateReason.BETTER,
        "mask_ap",
    )
    assert better.shadow_value is not None and better.champion_value is not None
    assert better.shadow_value > better.champion_value
    same = gate(segmentation_reviews(hits(80, 3), hits(80, 3)), shadow_p95_ms=40.0, settings=SETTINGS)
    assert (same.outcome, same.reason) == (GateOutcome.HELD, GateReason.NOT_BETTER)
    # After a promotion the shadow is the previous champion: its better masks roll the promotion back.
    rolled = watch(segmentation_reviews(hits(60, 2), hits(60, 10)), SETTINGS)
    assert (rolled.outcome, rolled.metric) == (GateOutcome.ROLLED_BACK, "mask_ap")
