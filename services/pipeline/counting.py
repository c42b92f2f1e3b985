"""Counting toward a training (pure): a deployment's submissions, drift reports and outlier scores since
its last training request, and the decision to request one (`services.common.domain.triggers.decide`)
once continuous training is active and a rule of its policy holds.

A deployment moves through cycles numbered from 1; cycle N ends when it triggers training request
`"<deployment_id>:N"`, and everything counts from nothing in cycle N + 1. The id is the same however often
the decision is replayed, so a replay requests the same training, which is created once; and since every
rule needs `min_submitted` (at least 1) new submissions in the new cycle, a replayed drift report or score
cannot trigger the next cycle either.

The count lives in a faust table, which a broker that forgets (the local one, or a lost changelog) loses;
Postgres holds the truth it is rebuilt from: the cycles that have an experiment, and the predictions
submitted since the latest one. The drift reports of that cycle start over (and a report replayed then
counts again), and outlier scores kept under another cycle number than the rebuilt one do not count.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import DriftReported, OutlierScored
from schemas.triggers import MAX_DRIFT_REPORTS, MAX_OUTLIER_WINDOW, TriggerFired, TriggerPolicy
from schemas.vocabulary import Role
from services.common.domain.quality import Reviewed, role_quality
from services.common.domain.triggers import Observed, QualityFigures
from services.common.domain.triggers import decide as decide_rules

# Training requests' event ids derive from their request id: a replayed trigger is the same event.
REQUEST_NAMESPACE = UUID("0b6f3c9e-58d2-4a71-9e43-2c7d1a8f5e60")


class CycleCount(BaseModel):
    """What the pipeline keeps per deployment (its faust table's value)."""

    model_config = ConfigDict(frozen=True)

    cycle: int = Field(1, ge=1, description="The cycle being counted.")
    submitted: int = Field(0, ge=0, description="Submissions counted in this cycle.")
    total: int = Field(0, ge=0, description="Submissions counted in all cycles.")
    last_request_at: datetime | None = Field(
        None, description="When the previous cycle's training was requested (its triggering event's time)."
    )
    drifted_features: tuple[int, ...] = Field(
        (), description="Per drift report of this cycle (the latest ones), the features it found drifted."
    )
    drift_until: datetime | None = Field(
        None, description="End of the latest drift window counted: a replayed report ends no later."
    )
    last_counted: UUID | None = Field(
        None,
        description="The prediction whose submission was counted last. Its own key is set after this "
        "entry, and each goes to the changelog as a record of its own (one per batch on tansu): a worker "
        "killed in between leaves it only here, so its replay is still known.",
    )


class OutlierWindow(BaseModel):
    """The latest predictions scored for a deployment (its faust table's second value, apart so that
    submissions and drift reports do not carry it): per prediction, the low 32 bits of its id, its
    outlier score and the cycle it counts in. Kept over a trigger, so a replayed score of the previous
    cycle is known and not counted again. (Two predictions among the kept ones sharing 32 bits, odds of
    about 1 in 4 million per score with 1000 kept, would count the second as a replay.)"""

    model_config = ConfigDict(frozen=True)

    ids: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()
    cycles: tuple[int, ...] = ()

    def of_cycle(self, cycle: int) -> list[float]:
        return [score for score, c in zip(self.scores, self.cycles, strict=True) if c == cycle]


class Trigger(NamedTuple):
    cycle: int
    submitted: int
    fired: TriggerFired


class TrainingSettings(NamedTuple):
    """The deployment's continuous-training switch, threshold and policy, as Postgres holds them now."""

    active: bool
    threshold: int | None
    policy: TriggerPolicy = TriggerPolicy()
    champion_id: UUID | None = None


def count_submission(
    state: CycleCount,
    settings: TrainingSettings,
    at: datetime,
    quality: QualityFigures | None = None,
    outliers: OutlierWindow | None = None,
) -> tuple[CycleCount, Trigger | None]:
    """Count one new submission and decide.

    While training is off the count keeps growing, so turning it on again triggers at the next
    submission when the threshold was passed meanwhile."""
    counted = state.model_copy(update={"submitted": state.submitted + 1, "total": state.total + 1})
    return decide(counted, settings, at, quality, outliers)


def observe_drift(state: CycleCount, report: DriftReported) -> CycleCount | None:
    """The state with the report counted; None when a report ending no later was counted (a replay)."""
    if state.drift_until is not None and report.window_end <= state.drift_until:
        return None
    drifted = sum(feature.drifted for feature in report.features) if report.drift_detected else 0
    return state.model_copy(
        update={
            "drifted_features": (*state.drifted_features, drifted)[-MAX_DRIFT_REPORTS:],
            "drift_until": report.window_end,
        }
    )


def observe_outlier(window: OutlierWindow, cycle: int, scored: OutlierScored) -> OutlierWindow | None:
    """The window with the score counted in `cycle`; None when the prediction is already kept (a replay)."""
    short = scored.prediction_id.int & 0xFFFFFFFF
    if short in window.ids:
        return None
    return OutlierWindow(
        ids=(*window.ids, short)[-MAX_OUTLIER_WINDOW:],
        scores=(*window.scores, scored.score)[-MAX_OUTLIER_WINDOW:],
        cycles=(*window.cycles, cycle)[-MAX_OUTLIER_WINDOW:],
    )


def decide(
    state: CycleCount,
    settings: TrainingSettings,
    at: datetime,
    quality: QualityFigures | None = None,
    outliers: OutlierWindow | None = None,
) -> tuple[CycleCount, Trigger | None]:
    """Trigger the cycle when training is active and a rule holds at `at` (and start the next cycle)."""
    if not settings.active:
        return state, None
    observed = Observed(
        now=at,
        last_request_at=state.last_request_at,
        submitted=state.submitted,
        drifted_features=state.drifted_features,
        outlier_scores=outliers.of_cycle(state.cycle) if outliers else (),
        quality=quality,
    )
    fired = decide_rules(settings.threshold, settings.policy, observed)
    if fired is None:
        return state, None
    following = CycleCount(
        cycle=state.cycle + 1,
        total=state.total,
        last_request_at=at,
        drift_until=state.drift_until,
    )
    return following, Trigger(state.cycle, state.submitted, fired)


def champion_quality(latest: list[Reviewed], first: list[Reviewed]) -> QualityFigures | None:
    """The champion's accuracy (AP for detection) on its latest reviews and on its first ones after it
    was deployed; None when the detection type has no such metric or nothing was reviewed."""
    now, then = role_quality(latest, Role.CHAMPION), role_quality(first, Role.CHAMPION)
    metric = next((name for name in ("accuracy", "ap") if name in now), None)
    if metric is None:
        return None
    return QualityFigures(metric, now[metric], int(now["reviewed"]), then.get(metric))


def needs_reconciling(state: CycleCount | None, latest_cycle: int) -> bool:
    """The table forgot the deployment, or counts a cycle that already has its experiment (its changelog
    was lost after a trigger): either way the table is behind Postgres."""
    return state is None or state.cycle <= latest_cycle


def reconciled(
    latest_cycle: int, latest_at: datetime | None, submitted_since: int, submitted_total: int
) -> CycleCount:
    """The count Postgres implies: the cycle after the latest one with an experiment (created at
    `latest_at`), and the predictions submitted since that experiment."""
    return CycleCount(
        cycle=latest_cycle + 1, submitted=submitted_since, total=submitted_total, last_request_at=latest_at
    )


def request_event_id(request: str) -> UUID:
    return uuid.uuid5(REQUEST_NAMESPACE, request)
