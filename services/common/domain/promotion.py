"""The promotion gate (pure): whether a shadow is proven better than the champion on the same reviewed
predictions, and whether a previous champion kept as shadow after a promotion proves better again.

Classification: McNemar's exact test on the discordant pairs (one role right, the other wrong), one-sided
(is the challenger right more often?). Detection: a paired bootstrap over images of box AP@[.5:.95];
segmentation: the same of mask AP@[.5:.95]; seeded, so a replay decides the same."""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

from schemas.events import GateDecision, GateMetric, GateOutcome, GateReason
from schemas.predictions import ClassificationPrediction, DetectionPrediction, SegmentationPrediction

from .coco import WeightedAP
from .quality import Reviewed, top_class


@dataclass(frozen=True)
class GateSettings:
    min_pairs: int  # paired reviewed predictions needed before any decision
    level: float  # the test's significance level (one-sided)
    latency_p95_budget_ms: float  # a candidate answering slower than this at p95 is not promoted
    watch_reviews: int  # paired reviews after a promotion during which a rollback may happen
    bootstrap_resamples: int
    seed: int = 0


@dataclass(frozen=True)
class Paired:
    """The challenger against the incumbent on the same reviews: its figures and the one-sided p-value."""

    metric: GateMetric
    pairs: int
    incumbent: float
    challenger: float
    p_value: float


def mcnemar_exact(incumbent_only: int, challenger_only: int) -> float:
    """One-sided exact McNemar p-value that the challenger is right more often: P(X >= challenger_only)
    for X ~ Binomial(discordant pairs, 1/2) (scipy.stats.binomtest(..., alternative="greater"))."""
    n = incumbent_only + challenger_only
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(challenger_only, n + 1))
    return min(1.0, tail / (1 << n))  # exact integers: no underflow for thousands of pairs


def paired_bootstrap(
    inc: WeightedAP, cha: WeightedAP, resamples: int, seed: int
) -> tuple[float, float, float]:
    """Both roles' AP over the same images and the one-sided bootstrap p-value that the challenger's AP is
    higher: the share of resamples of images (with replacement, the same for both roles) in which it is
    not (a resample with no ground truth shape counts as not higher)."""
    rng = np.random.default_rng(seed)
    not_higher = 0
    for _ in range(resamples):
        drawn = np.bincount(rng.integers(0, inc.size, inc.size), minlength=inc.size)
        a, b = inc.ap(drawn), cha.ap(drawn)
        not_higher += int(a < 0 or b <= a)
    every = np.ones(inc.size, dtype=int)  # each image once: detection_quality's AP, equal scores included
    return inc.ap(every), cha.ap(every), (not_higher + 1) / (resamples + 1)


def paired(reviewed: list[Reviewed], settings: GateSettings) -> Paired | None:
    """The shadow (challenger) against the champion (incumbent) over the predictions both answered and a
    person reviewed (at least one); None when the answers are of mixed types (nothing to measure)."""
    both = [(r.review, r.champion, r.shadow) for r in reviewed if r.shadow is not None]
    assert both, "no paired review to compare on"
    if all(isinstance(p, ClassificationPrediction) for triple in both for p in triple):
        truth = [top_class(review) for review, _, _ in both]  # type: ignore[arg-type]
        inc = [top_class(c) == t for (_, c, _), t in zip(both, truth, strict=True)]  # type: ignore[arg-type]
        cha = [top_class(s) == t for (_, _, s), t in zip(both, truth, strict=True)]  # type: ignore[arg-type]
        only_inc = sum(i and not c for i, c in zip(inc, cha, strict=True))
        only_cha = sum(c and not i for i, c in zip(inc, cha, strict=True))
        return Paired(
            metric=GateMetric.ACCURACY,
            pairs=len(both),
            incumbent=float(np.mean(inc)),
            challenger=float(np.mean(cha)),
            p_value=mcnemar_exact(only_inc, only_cha),
        )
    for kind, metric, weighted in (
        (DetectionPrediction, GateMetric.AP, WeightedAP.boxes),
        (SegmentationPrediction, GateMetric.MASK_AP, WeightedAP.masks),
    ):
        if all(isinstance(p, kind) for triple in both for p in triple):
            inc = weighted([(review, champion) for review, champion, _ in both])  # type: ignore[arg-type]
            cha = weighted([(review, shadow) for review, _, shadow in both])  # type: ignore[arg-type]
            if len(both) < settings.min_pairs:  # no bootstrap on what cannot be decided anyway
                every = np.ones(len(both), dtype=int)
                return Paired(metric, len(both), inc.ap(every), cha.ap(every), 1.0)
            a, b, p = paired_bootstrap(inc, cha, settings.bootstrap_resamples, settings.seed)
            return Paired(metric, len(both), a, b, p)
    return None


def gate(reviewed: list[Reviewed], shadow_p95_ms: float | None, settings: GateSettings) -> GateDecision:
    """A candidate shadow against the champion: promote when it was compared on at least `min_pairs`
    reviewed predictions, is better at `level`, and its p95 latency is within the budget; else hold."""
    if not _any_pair(reviewed):
        return _decision(GateOutcome.HELD, GateReason.TOO_FEW_PAIRS, None, shadow_p95_ms, settings)
    figures = paired(reviewed, settings)
    if figures is None:
        return _decision(GateOutcome.HELD, GateReason.NO_MEASURE, None, shadow_p95_ms, settings)
    if figures.pairs < settings.min_pairs:
        return _decision(GateOutcome.HELD, GateReason.TOO_FEW_PAIRS, figures, shadow_p95_ms, settings)
    if figures.challenger <= figures.incumbent or figures.p_value > settings.level:
        return _decision(GateOutcome.HELD, GateReason.NOT_BETTER, figures, shadow_p95_ms, settings)
    if shadow_p95_ms is None or shadow_p95_ms > settings.latency_p95_budget_ms:
        return _decision(GateOutcome.HELD, GateReason.TOO_SLOW, figures, shadow_p95_ms, settings)
    return _decision(GateOutcome.PROMOTED, GateReason.BETTER, figures, shadow_p95_ms, settings)


def watch(reviewed: list[Reviewed], settings: GateSettings) -> GateDecision:
    """The previous champion (now shadow) against the version promoted over it, on the reviews since:
    roll back as soon as it is better at `level`; keep the promotion once `watch_reviews` paired reviews
    passed without that; else keep watching."""
    if not _any_pair(reviewed):
        return _decision(GateOutcome.WATCHING, GateReason.WATCHING, None, None, settings)
    figures = paired(reviewed, settings)
    if figures is None:
        return _decision(GateOutcome.KEPT, GateReason.NO_MEASURE, None, None, settings)
    if (
        figures.pairs >= settings.min_pairs
        and figures.challenger > figures.incumbent
        and figures.p_value <= settings.level
    ):
        return _decision(GateOutcome.ROLLED_BACK, GateReason.PREVIOUS_BETTER, figures, None, settings)
    if figures.pairs >= settings.watch_reviews:
        return _decision(GateOutcome.KEPT, GateReason.WATCH_PASSED, figures, None, settings)
    return _decision(GateOutcome.WATCHING, GateReason.WATCHING, figures, None, settings)


def _any_pair(reviewed: list[Reviewed]) -> bool:
    return any(r.shadow is not None for r in reviewed)


_WHY = {
    GateReason.NO_MEASURE: "no quality measure for this detection type",
    GateReason.TOO_FEW_PAIRS: "{pairs} paired reviewed predictions of the {min_pairs} needed",
    GateReason.NOT_BETTER: "shadow {metric} {challenger:.3f} vs champion {incumbent:.3f} on {pairs} pairs, "
    "p = {p_value:.3g} > {level}: not better with confidence",
    GateReason.TOO_SLOW: "better ({metric} {challenger:.3f} vs {incumbent:.3f}, p = {p_value:.3g}) but its "
    "p95 latency {latency} ms is over the {budget} ms budget",
    GateReason.BETTER: "shadow {metric} {challenger:.3f} vs champion {incumbent:.3f} on {pairs} pairs, "
    "p = {p_value:.3g} <= {level}; p95 latency {latency} ms within {budget} ms",
    GateReason.PREVIOUS_BETTER: "the previous champion's {metric} {challenger:.3f} beats the promoted "
    "version's {incumbent:.3f} on {pairs} reviews since, p = {p_value:.3g} <= {level}",
    GateReason.WATCH_PASSED: "the promoted version held for {pairs} paired reviews ({metric} {incumbent:.3f} "
    "vs previous {challenger:.3f})",
    GateReason.WATCHING: "watching the promotion: {pairs} of {watch} paired reviews",
}


def _decision(
    outcome: GateOutcome,
    reason: GateReason,
    figures: Paired | None,
    shadow_p95_ms: float | None,
    settings: GateSettings,
) -> GateDecision:
    values = {
        "pairs": figures.pairs if figures else 0,
        "metric": figures.metric if figures else None,
        "incumbent": figures.incumbent if figures else None,
        "challenger": figures.challenger if figures else None,
        "p_value": figures.p_value if figures else None,
    }
    message = _WHY[reason].format(
        **values,
        min_pairs=settings.min_pairs,
        level=settings.level,
        latency="none" if shadow_p95_ms is None else f"{shadow_p95_ms:.1f}",
        budget=settings.latency_p95_budget_ms,
        watch=settings.watch_reviews,
    )
    return GateDecision(
        outcome=outcome,
        reason=reason,
        message=message,
        metric=figures.metric if figures else None,
        pairs=figures.pairs if figures else 0,
        champion_value=figures.incumbent if figures else None,
        shadow_value=figures.challenger if figures else None,
        p_value=figures.p_value if figures else None,
        level=settings.level,
        shadow_latency_p95_ms=shadow_p95_ms,
    )
