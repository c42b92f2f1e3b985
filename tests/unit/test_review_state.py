"""The review state machine, every pair of states."""

from __future__ import annotations

import itertools

import pytest

from schemas.vocabulary import ReviewStatus
from services.common.domain.review_state import IllegalTransition, allowed, check_transition

T, R, S = ReviewStatus.TO_REVIEW, ReviewStatus.REVIEWED, ReviewStatus.SUBMITTED
LEGAL = {(T, R), (R, R), (R, S)}
PAIRS = list(itertools.product(ReviewStatus, repeat=2))


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_every_pair(current: ReviewStatus, target: ReviewStatus) -> None:
    assert allowed(current, target) is ((current, target) in LEGAL)
    if (current, target) in LEGAL:
        check_transition(current, target)
    else:
        with pytest.raises(
            IllegalTransition, match=f"illegal review transition {current} -> {target}"
        ) as err:
            check_transition(current, target)
        assert (err.value.current, err.value.target) == (current, target)


def test_values_are_the_product_vocabulary() -> None:
    assert [s.value for s in ReviewStatus] == ["TO_REVIEW", "REVIEWED", "SUBMITTED"]


def test_plain_strings_are_accepted() -> None:
    check_transition("TO_REVIEW", "REVIEWED")  # type: ignore[arg-type]
    with pytest.raises(IllegalTransition, match="final"):
        check_transition("SUBMITTED", "REVIEWED")  # type: ignore[arg-type]


def test_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="DONE"):
        check_transition(T, "DONE")  # type: ignore[arg-type]
