"""The champion-vs-shadow comparison the review page shows (pure): latency, quality, agreement."""

from __future__ import annotations

from uuid import uuid4

import pytest

from services.api.comparison import compare
from services.common.domain.deployments import RoleAnswers


def classes(top: str) -> dict:
    other = "b" if top == "a" else "a"
    return {"type": "classification", "classes": [top, other], "scores": [0.9, 0.1]}


def answers(champion: str, shadow: str | None, review: str | None, latency: float) -> RoleAnswers:
    return RoleAnswers(
        champion_prediction=classes(champion),
        champion_latency_ms=latency,
        shadow_prediction=classes(shadow) if shadow else None,
        shadow_latency_ms=2 * latency if shadow else None,
        review=classes(review) if review else None,
    )


def test_classification_latency_accuracy_and_agreement() -> None:
    champion, shadow = uuid4(), uuid4()
    rows = [
        answers("a", "a", "a", 10.0),  # both right, agree
        answers("a", "b", "b", 20.0),  # shadow right, disagree
        answers("b", "b", None, 30.0),  # unreviewed, agree
        answers("a", None, "a", 40.0),  # no shadow answer
    ]
    result = compare(rows, champion, shadow, window=100)
    assert result.window == 100
    assert result.champion is not None and result.shadow is not None
    assert result.champion.model_version_id == champion and result.shadow.model_version_id == shadow
    assert result.champion.predictions == 4 and result.shadow.predictions == 3
    assert result.champion.latency_p50_ms == pytest.approx(25.0)
    assert result.shadow.latency_p50_ms == pytest.approx(40.0)
    assert result.champion.quality == {"accuracy": pytest.approx(2 / 3), "reviewed": 3.0}
    assert result.shadow.quality == {"accuracy": 1.0, "reviewed": 2.0}
    assert result.agreement == pytest.approx(2 / 3)


def test_detection_boxes_agree_by_iou() -> None:
    box = {"type": "detection", "classes": ["x"], "scores": [0.9], "boxes": [[0, 0, 10, 10]]}
    half = {"type": "detection", "classes": ["x"], "scores": [0.9], "boxes": [[0, 0, 10, 5]]}
    row = RoleAnswers(box, 5.0, half, 6.0, box)
    result = compare([row], uuid4(), uuid4(), window=10)
    assert result.agreement == pytest.approx(0.5)
    assert result.champion is not None and result.champion.quality["ap50"] == pytest.approx(1.0)
    assert result.shadow is not None and result.shadow.quality["reviewed"] == 1.0


def test_no_shadow_and_no_champion() -> None:
    alone = compare([answers("a", None, None, 1.0)], uuid4(), None, window=5)
    assert alone.shadow is None and alone.agreement is None
    assert alone.champion is not None and alone.champion.quality == {}
    empty = compare([], None, None, window=5)
    assert empty.champion is None and empty.shadow is None
