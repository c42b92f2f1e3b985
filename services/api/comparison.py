"""Champion against shadow over a deployment's latest predictions (pure): latency percentiles, quality
against the reviews, and how often the shadow agreed with the champion."""

from __future__ import annotations

from uuid import UUID

import numpy as np
from pydantic import TypeAdapter

from schemas.api.deployments import ComparisonOut, RoleFigures
from schemas.predictions import Prediction
from schemas.vocabulary import Role
from services.common.domain.agreement import agreement
from services.common.domain.deployments import RoleAnswers
from services.common.domain.quality import Reviewed, latency_percentiles, reviewed_answers, role_quality

_PREDICTION: TypeAdapter[Prediction] = TypeAdapter(Prediction)


def _figures(
    model_version_id: UUID, latencies: list[float], reviewed: list[Reviewed], role: Role
) -> RoleFigures:
    p50, p95 = latency_percentiles(latencies)
    return RoleFigures(
        model_version_id=model_version_id,
        predictions=len(latencies),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        quality=role_quality(reviewed, role),
    )


def compare(
    answers: list[RoleAnswers], champion_id: UUID | None, shadow_id: UUID | None, window: int
) -> ComparisonOut:
    """`answers`: the latest predictions of champion `champion_id`, with the answers of shadow `shadow_id`."""
    if champion_id is None:
        return ComparisonOut(window=window, champion=None, shadow=None, agreement=None)
    reviewed = reviewed_answers(answers)
    both = [a for a in answers if a.shadow_prediction is not None]
    agreements = [
        agreed
        for a in both
        if (
            agreed := agreement(
                _PREDICTION.validate_python(a.champion_prediction),
                _PREDICTION.validate_python(a.shadow_prediction),
            )
        )
        is not None
    ]
    return ComparisonOut(
        window=window,
        champion=_figures(champion_id, [a.champion_latency_ms for a in answers], reviewed, Role.CHAMPION),
        shadow=_figures(
            shadow_id,
            [a.shadow_latency_ms for a in both if a.shadow_latency_ms is not None],
            reviewed,
            Role.SHADOW,
        )
        if shadow_id is not None
        else None,
        agreement=float(np.mean(agreements)) if agreements else None,
    )
