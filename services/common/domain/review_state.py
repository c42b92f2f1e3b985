"""The review state machine of a predicted asset: TO_REVIEW -> REVIEWED -> SUBMITTED, one way.

A REVIEWED asset may be reviewed again (REVIEWED -> REVIEWED): a reviewer who spots a mistake
fixes it before submission, and nothing downstream has used the review yet except the quality
metrics, which take the latest one. Once SUBMITTED the asset is in a dataset version and final.
The database enforces the same rules with a trigger (migrations/0001_initial.sql).
"""

from __future__ import annotations

from uuid import UUID

from schemas.vocabulary import ReviewStatus

_ALLOWED: frozenset[tuple[ReviewStatus, ReviewStatus]] = frozenset(
    {
        (ReviewStatus.TO_REVIEW, ReviewStatus.REVIEWED),
        (ReviewStatus.REVIEWED, ReviewStatus.REVIEWED),
        (ReviewStatus.REVIEWED, ReviewStatus.SUBMITTED),
    }
)


class IllegalTransition(ValueError):
    """A predicted asset was asked to move to a review state it cannot reach from its current one."""

    def __init__(
        self, current: ReviewStatus, target: ReviewStatus, prediction_id: UUID | None = None
    ) -> None:
        subject = f"prediction {prediction_id}: " if prediction_id is not None else ""
        super().__init__(f"{subject}illegal review transition {current} -> {target}{_why(current, target)}")
        self.current = current
        self.target = target
        self.prediction_id = prediction_id


def _why(current: ReviewStatus, target: ReviewStatus) -> str:
    if current is ReviewStatus.SUBMITTED:
        return ": a submitted prediction is final"
    if target is ReviewStatus.SUBMITTED:
        return ": only a reviewed prediction can be submitted"
    return ": review states only move forward"


def allowed(current: ReviewStatus, target: ReviewStatus) -> bool:
    return (ReviewStatus(current), ReviewStatus(target)) in _ALLOWED


def check_transition(current: ReviewStatus, target: ReviewStatus, prediction_id: UUID | None = None) -> None:
    """Raise IllegalTransition unless `current` may move to `target` (naming the prediction, if given)."""
    current, target = ReviewStatus(current), ReviewStatus(target)
    if not allowed(current, target):
        raise IllegalTransition(current, target, prediction_id)
