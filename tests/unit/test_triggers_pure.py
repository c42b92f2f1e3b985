"""Retrain triggers (pure): each rule of a deployment's policy and their combination, the cooldown and the
minimum submitted, and the pipeline's cycle state requesting each training once under replay."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pydantic import ValidationError

from schemas.api.deployments import ContinuousTrainingRequest
from schemas.events import DriftReported, FeatureDrift, MultipleTestingCorrection, OutlierScored
from schemas.predictions import ClassificationPrediction
from schemas.triggers import MAX_OUTLIER_WINDOW, DriftRule, OutlierRateRule, QualityRule, TriggerPolicy
from schemas.vocabulary import TriggerRule
from services.common.domain.quality import Reviewed
from services.common.domain.triggers import Observed, QualityFigures, decide
from services.pipeline.counting import (
    CycleCount,
    OutlierWindow,
    TrainingSettings,
    champion_quality,
    count_submission,
    observe_drift,
    observe_outlier,
)
from services.pipeline.counting import decide as decide_cycle

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NONE = TriggerPolicy()
DRIFT = TriggerPolicy(drift=DriftRule(reports=3, min_features=2))
OUTLIERS = TriggerPolicy(outlier_rate=OutlierRateRule(level=0.9, window=10, rate=0.3))


def _observed(submitted: int = 1, **figures: object) -> Observed:
    return Observed(now=NOW, last_request_at=None, submitted=submitted, **figures)  # type: ignore[arg-type]


def _quality(current: float, reviews: int = 20, deployed: float | None = None) -> QualityFigures:
    return QualityFigures("accuracy", current, reviews, deployed)


def test_the_submitted_count_fires_at_its_threshold() -> None:
    assert decide(3, NONE, _observed(2)) is None
    fired = decide(3, NONE, _observed(3))
    assert fired is not None
    assert (fired.rule, fired.figures) == (TriggerRule.SUBMITTED, {"threshold": 3, "submitted": 3})
    assert decide(None, NONE, _observed(100)) is None  # no threshold, no rule


def test_drift_fires_when_the_last_k_reports_each_flag_m_features() -> None:
    assert decide(None, DRIFT, _observed(drifted_features=[2, 3])) is None  # fewer than K reports
    assert decide(None, DRIFT, _observed(drifted_features=[2, 0, 3])) is None  # one not flagged
    assert decide(None, DRIFT, _observed(drifted_features=[2, 1, 3])) is None  # one with too few features
    fired = decide(None, DRIFT, _observed(drifted_features=[0, 2, 4, 3]))  # the last three count
    assert fired is not None and fired.rule is TriggerRule.DRIFT
    assert fired.figures == {"reports": 3, "min_features": 2, "fewest_drifted_features": 2, "submitted": 1}


def test_the_outlier_rate_fires_when_a_full_window_exceeds_it() -> None:
    four_of_ten = [0.95] * 4 + [0.5] * 6
    assert decide(None, OUTLIERS, _observed(outlier_scores=four_of_ten[:9])) is None  # window not full
    assert decide(None, OUTLIERS, _observed(outlier_scores=[0.95] * 3 + [0.9] * 7)) is None  # 0.3: not above
    fired = decide(None, OUTLIERS, _observed(outlier_scores=[0.99] * 5 + four_of_ten))  # the last ten
    assert fired is not None and fired.rule is TriggerRule.OUTLIER_RATE
    assert fired.figures == {"share_above": 0.4, "rate": 0.3, "level": 0.9, "window": 10, "submitted": 1}


def test_quality_fires_below_its_level_or_on_a_drop_from_deployment() -> None:
    below = TriggerPolicy(quality=QualityRule(reviews=20, below=0.8))
    assert decide(None, below, _observed(quality=_quality(0.7, reviews=19))) is None  # too few reviews
    assert decide(None, below, _observed(quality=_quality(0.85))) is None
    assert decide(None, below, _observed()) is None  # nothing measured
    fired = decide(None, below, _observed(quality=_quality(0.7)))
    assert fired is not None and fired.rule is TriggerRule.QUALITY
    assert fired.figures == {"accuracy": 0.7, "reviews": 20, "below": 0.8, "submitted": 1}

    drop = TriggerPolicy(quality=QualityRule(reviews=20, drop=0.1))
    assert decide(None, drop, _observed(quality=_quality(0.7))) is None  # no value at deployment yet
    assert decide(None, drop, _observed(quality=_quality(0.86, deployed=0.95))) is None  # dropped 0.09
    fired = decide(None, drop, _observed(quality=_quality(0.8, deployed=0.95)))
    assert fired is not None and fired.figures["accuracy_at_deployment"] == 0.95
    with pytest.raises(ValidationError, match="give below, drop or both"):
        QualityRule(reviews=5)


def test_rules_combine_as_any_and_the_first_that_holds_is_named() -> None:
    both = TriggerPolicy(
        drift=DriftRule(reports=1), outlier_rate=OutlierRateRule(level=0.5, window=2, rate=0.5)
    )
    observed = _observed(submitted=5, drifted_features=[1], outlier_scores=[0.9, 0.9])
    fired = decide(5, both, observed)
    assert fired is not None and fired.rule is TriggerRule.SUBMITTED  # the count first, then drift...
    fired = decide(10, both, observed)
    assert fired is not None and fired.rule is TriggerRule.DRIFT
    fired = decide(10, both, _observed(submitted=5, drifted_features=[0], outlier_scores=[0.9, 0.9]))
    assert fired is not None and fired.rule is TriggerRule.OUTLIER_RATE
    assert decide(10, both, _observed(submitted=5, drifted_features=[0], outlier_scores=[0.9, 0.1])) is None


def test_no_rule_fires_before_the_minimum_submitted() -> None:
    drifting = [3, 3, 3]
    assert decide(None, DRIFT, _observed(submitted=0, drifted_features=drifting)) is None  # not on nothing
    at_least_five = DRIFT.model_copy(update={"min_submitted": 5})
    assert decide(None, at_least_five, _observed(submitted=4, drifted_features=drifting)) is None
    assert decide(None, at_least_five, _observed(submitted=5, drifted_features=drifting)) is not None
    assert decide(2, at_least_five, _observed(submitted=4)) is None  # the count rule waits for it too


def test_no_rule_fires_during_the_cooldown() -> None:
    cooled = DRIFT.model_copy(update={"cooldown_s": 3600.0})
    drifting = {"submitted": 1, "drifted_features": [3, 3, 3]}
    recent = Observed(now=NOW, last_request_at=NOW - timedelta(minutes=30), **drifting)  # type: ignore[arg-type]
    assert decide(None, cooled, recent) is None
    assert decide(3, cooled, replace(recent, submitted=3)) is None  # the count rule waits for it too
    later = Observed(now=NOW, last_request_at=NOW - timedelta(hours=1), **drifting)  # type: ignore[arg-type]
    assert decide(None, cooled, later) is not None


def test_active_needs_a_threshold_or_a_rule() -> None:
    with pytest.raises(ValidationError, match="threshold or a policy rule is required"):
        ContinuousTrainingRequest(active=True)
    assert ContinuousTrainingRequest(active=True, policy=DRIFT).policy == DRIFT
    assert ContinuousTrainingRequest(active=True, threshold=3).policy == NONE


def test_the_champion_quality_compares_its_latest_reviews_with_its_first() -> None:
    def reviewed(answer: str, truth: str) -> Reviewed:
        return Reviewed(
            review=ClassificationPrediction(classes=[truth], scores=[1.0]),
            champion=ClassificationPrediction(classes=[answer], scores=[0.9]),
            shadow=None,
        )

    first = [reviewed("3", "3")] * 3
    latest = [reviewed("3", "3"), reviewed("3", "5"), reviewed("3", "8")]
    assert champion_quality(latest, first) == QualityFigures("accuracy", 1 / 3, 3, 1.0)
    assert champion_quality(latest, []) == QualityFigures("accuracy", 1 / 3, 3, None)
    assert champion_quality([], first) is None  # nothing reviewed lately: nothing to decide on


# --- the pipeline's cycle state ---------------------------------------------------------------------


def _report(deployment_id: object, minute: int, drifted: int) -> DriftReported:
    end = NOW + timedelta(minutes=minute)
    return DriftReported(
        deployment_id=deployment_id,  # type: ignore[arg-type]
        reference_id=uuid4(),
        window_start=end - timedelta(minutes=1),
        window_end=end,
        window_size=50,
        reference_size=500,
        correction=MultipleTestingCorrection.BENJAMINI_HOCHBERG,
        alpha=0.05,
        features=[
            FeatureDrift(feature=f"f{i}", statistic=0.5, p_value=0.001, drifted=i < drifted) for i in range(4)
        ],
        drift_detected=drifted > 0,
        occurred_at=end,
    )


def _apply(
    state: CycleCount, window: OutlierWindow, settings: TrainingSettings, event: DriftReported | OutlierScored
) -> tuple[CycleCount, OutlierWindow, list[int]]:
    """What the stream does with a score event: count it once, then decide at the event's time."""
    if isinstance(event, DriftReported):
        counted = observe_drift(state, event)
        if counted is None:
            return state, window, []
        state = counted
    else:
        kept = observe_outlier(window, state.cycle, event)
        if kept is None:
            return state, window, []
        window = kept
    following, trigger = decide_cycle(state, settings, event.occurred_at, outliers=window)
    return following, window, [trigger.cycle] if trigger else []


def test_a_drifting_stream_requests_one_training_and_its_replay_none() -> None:
    deployment_id = uuid4()
    settings = TrainingSettings(active=True, threshold=100, policy=DRIFT)
    state, _ = count_submission(CycleCount(), settings, NOW)  # one submission: the minimum
    reports = [_report(deployment_id, minute, drifted=2) for minute in range(1, 7)]
    requested: list[int] = []
    for report in reports:
        state, _, cycles = _apply(state, OutlierWindow(), settings, report)
        requested += cycles
    # The third flagged report fires cycle 1; the next three find no new submission in cycle 2.
    assert requested == [1]
    assert (state.cycle, state.submitted, state.drifted_features) == (2, 0, (2, 2, 2))
    for report in reports:  # the whole partition replayed
        state, _, cycles = _apply(state, OutlierWindow(), settings, report)
        requested += cycles
    assert requested == [1]
    assert state.drifted_features == (2, 2, 2)  # replays ignored
    state, trigger = count_submission(state, settings, NOW + timedelta(minutes=7))
    assert trigger is not None and (trigger.cycle, trigger.fired.rule) == (2, TriggerRule.DRIFT)


def test_outlier_scores_count_once_and_a_replay_of_the_last_cycle_is_known() -> None:
    deployment_id = uuid4()
    settings = TrainingSettings(active=True, threshold=None, policy=OUTLIERS)
    state, _ = count_submission(CycleCount(), settings, NOW)
    window = OutlierWindow()
    scores = [
        OutlierScored(
            deployment_id=deployment_id,
            prediction_id=uuid4(),
            reference_id=uuid4(),
            score=0.99,
            occurred_at=NOW,
        )
        for _ in range(10)
    ]
    requested: list[int] = []
    for scored in scores:
        state, window, cycles = _apply(state, window, settings, scored)
        requested += cycles
    assert requested == [1] and window.of_cycle(1) == [0.99] * 10
    state, _ = count_submission(state, settings, NOW)  # a new submission in cycle 2: the minimum again
    for scored in scores:  # replayed: known, so cycle 2's window stays empty
        state, window, cycles = _apply(state, window, settings, scored)
        requested += cycles
    assert requested == [1] and state.cycle == 2 and window.of_cycle(2) == []
    # The window keeps the latest scores only, and the table value reads back as it was written.
    for i in range(MAX_OUTLIER_WINDOW):
        scored = scores[0].model_copy(update={"prediction_id": uuid4(), "score": i / MAX_OUTLIER_WINDOW})
        window = observe_outlier(window, 2, scored) or window
    assert len(window.ids) == MAX_OUTLIER_WINDOW and window.of_cycle(1) == []
    assert OutlierWindow.model_validate_json(window.model_dump_json()) == window
    state = observe_drift(state, _report(deployment_id, 1, drifted=1))
    assert state is not None and CycleCount.model_validate_json(state.model_dump_json()) == state
