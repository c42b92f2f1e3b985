"""Counting submissions toward a training (pure): a deployment's count since its last trigger, and the
decision to request a training once continuous training is active and the count reached its threshold.

A deployment moves through cycles numbered from 1; cycle N ends when it triggers training request
`"<deployment_id>:N"`, and counting starts over in cycle N + 1. The id is the same however often the
decision is replayed, so a replay requests the same training, which is created once.

The count lives in a faust table, which a broker that forgets (the local one, or a lost changelog) loses;
Postgres holds the truth it is rebuilt from: the cycles that have an experiment, and the predictions
submitted since the latest one.
"""

from __future__ import annotations

import uuid
from typing import NamedTuple
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

# Training requests' event ids derive from their request id: a replayed trigger is the same event.
REQUEST_NAMESPACE = UUID("0b6f3c9e-58d2-4a71-9e43-2c7d1a8f5e60")


class CycleCount(BaseModel):
    """What the pipeline keeps per deployment (its faust table's value)."""

    model_config = ConfigDict(frozen=True)

    cycle: int = Field(1, ge=1, description="The cycle being counted.")
    submitted: int = Field(0, ge=0, description="Submissions counted in this cycle.")
    total: int = Field(0, ge=0, description="Submissions counted in all cycles.")


class Trigger(NamedTuple):
    cycle: int
    submitted: int


class TrainingSettings(NamedTuple):
    """The deployment's continuous-training switch and threshold, as Postgres holds them now."""

    active: bool
    threshold: int | None


def count_submission(state: CycleCount, settings: TrainingSettings) -> tuple[CycleCount, Trigger | None]:
    """Count one new submission; trigger when training is active and the cycle reached the threshold.

    While training is off the count keeps growing, so turning it on again triggers at the next
    submission when the threshold was passed meanwhile."""
    counted = state.model_copy(update={"submitted": state.submitted + 1, "total": state.total + 1})
    return decide(counted, settings)


def decide(state: CycleCount, settings: TrainingSettings) -> tuple[CycleCount, Trigger | None]:
    """Trigger the cycle when training is active and its count reached the threshold (and start the next)."""
    if not settings.active or settings.threshold is None or state.submitted < settings.threshold:
        return state, None
    return (
        state.model_copy(update={"cycle": state.cycle + 1, "submitted": 0}),
        Trigger(state.cycle, state.submitted),
    )


def needs_reconciling(state: CycleCount | None, latest_cycle: int) -> bool:
    """The table forgot the deployment, or counts a cycle that already has its experiment (its changelog
    was lost after a trigger): either way the table is behind Postgres."""
    return state is None or state.cycle <= latest_cycle


def reconciled(latest_cycle: int, submitted_since: int, submitted_total: int) -> CycleCount:
    """The count Postgres implies: the cycle after the latest one with an experiment, and the predictions
    submitted since that experiment."""
    return CycleCount(cycle=latest_cycle + 1, submitted=submitted_since, total=submitted_total)


def request_event_id(request: str) -> UUID:
    return uuid.uuid5(REQUEST_NAMESPACE, request)
