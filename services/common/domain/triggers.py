"""Whether a deployment's data asks for a training now, and why (pure).

The rules of its trigger policy — the submitted-count threshold, drift, outlier rate, reviewed quality —
are read against what was observed since its last training request; the first that holds names itself
and the figures that made it hold. None fires during the cooldown after a request, nor before
`min_submitted` assets were submitted since it (a training needs data to learn from). Time is the
triggering event's own, so a replayed event is decided as it was the first time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.triggers import DriftRule, OutlierRateRule, QualityRule, TriggerFired, TriggerPolicy
from schemas.vocabulary import TriggerRule


@dataclass(frozen=True)
class QualityFigures:
    """The champion's metric (accuracy, or AP for detection) on its latest reviews, and on its first
    reviews after it was deployed (None: not measured yet)."""

    metric: str
    current: float
    reviews: int
    deployed: float | None


@dataclass(frozen=True)
class Observed:
    """What happened since the deployment's last training request (all of it before the first)."""

    now: datetime
    last_request_at: datetime | None
    submitted: int
    drifted_features: Sequence[int] = ()  # per drift report, oldest first; 0 when it found no drift
    outlier_scores: Sequence[float] = ()  # per prediction scored, oldest first
    quality: QualityFigures | None = None


def decide(threshold: int | None, policy: TriggerPolicy, observed: Observed) -> TriggerFired | None:
    """The first rule that holds (submitted count, drift, outlier rate, quality), or None."""
    if observed.submitted < policy.min_submitted:
        return None
    if (
        observed.last_request_at is not None
        and (observed.now - observed.last_request_at).total_seconds() < policy.cooldown_s
    ):
        return None
    fired = [
        _submitted(threshold, observed),
        _drift(policy.drift, observed) if policy.drift else None,
        _outlier_rate(policy.outlier_rate, observed) if policy.outlier_rate else None,
        _quality(policy.quality, observed) if policy.quality else None,
    ]
    first = next((rule for rule in fired if rule is not None), None)
    if first is None:
        return None
    return first.model_copy(update={"figures": first.figures | {"submitted": observed.submitted}})


def _submitted(threshold: int | None, observed: Observed) -> TriggerFired | None:
    if threshold is None or observed.submitted < threshold:
        return None
    return TriggerFired(rule=TriggerRule.SUBMITTED, figures={"threshold": threshold})


def _drift(rule: DriftRule, observed: Observed) -> TriggerFired | None:
    last = observed.drifted_features[-rule.reports :]
    if len(last) < rule.reports or min(last) < rule.min_features:
        return None
    return TriggerFired(
        rule=TriggerRule.DRIFT,
        figures={
            "reports": rule.reports,
            "min_features": rule.min_features,
            "fewest_drifted_features": min(last),
        },
    )


def _outlier_rate(rule: OutlierRateRule, observed: Observed) -> TriggerFired | None:
    window = observed.outlier_scores[-rule.window :]
    if len(window) < rule.window:
        return None
    share = sum(score > rule.level for score in window) / rule.window
    if share <= rule.rate:
        return None
    return TriggerFired(
        rule=TriggerRule.OUTLIER_RATE,
        figures={"share_above": share, "rate": rule.rate, "level": rule.level, "window": rule.window},
    )


def _quality(rule: QualityRule, observed: Observed) -> TriggerFired | None:
    quality = observed.quality
    if quality is None or quality.reviews < rule.reviews:
        return None
    below = rule.below is not None and quality.current < rule.below
    dropped = (
        rule.drop is not None
        and quality.deployed is not None
        and quality.deployed - quality.current > rule.drop
    )
    if not (below or dropped):
        return None
    figures = {quality.metric: quality.current, "reviews": quality.reviews}
    if quality.deployed is not None:
        figures[f"{quality.metric}_at_deployment"] = quality.deployed
    if rule.below is not None:
        figures["below"] = rule.below
    if rule.drop is not None:
        figures["drop"] = rule.drop
    return TriggerFired(rule=TriggerRule.QUALITY, figures=figures)
