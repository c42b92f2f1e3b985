"""The review queue's settings (acquisition weights, audit slice) and the quality figures its order
does not bias."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from schemas.api.deployments import ReviewQualityOut, ReviewQueueSettings
from schemas.vocabulary import Role
from services.common.db.repositories import deployment_figures, predicted_assets
from services.common.domain.acquisition import AuditedReview, audit_quality, in_audit
from services.common.domain.quality import role_quality, stored_reviewed

from ..context import Ctx, ReadKey, WriteKey
from ..errors import WRITE_ERRORS, not_found
from .deployments import MAX_COMPARISON_WINDOW, existing

router = APIRouter(prefix="/v1", tags=["review queue"])


@router.get("/deployments/{deployment_id}/review-queue")
async def get_review_queue(ctx: Ctx, key: ReadKey, deployment_id: UUID) -> ReviewQueueSettings:
    return (await existing(ctx.pool, key.project_id, deployment_id)).review_queue


@router.put("/deployments/{deployment_id}/review-queue", responses=WRITE_ERRORS)
async def set_review_queue(
    ctx: Ctx, key: WriteKey, deployment_id: UUID, body: ReviewQueueSettings
) -> ReviewQueueSettings:
    """Set the acquisition weights and the audit slice; the TO_REVIEW predictions are re-ranked at once."""
    if not await predicted_assets.set_review_queue(ctx.pool, key.project_id, deployment_id, body):
        raise not_found("path.deployment_id", "deployment")
    return body


@router.get("/deployments/{deployment_id}/review-quality")
async def review_quality(
    ctx: Ctx,
    key: ReadKey,
    deployment_id: UUID,
    window: Annotated[int, Query(ge=1, le=MAX_COMPARISON_WINDOW, description="Latest reviews.")] = 1000,
) -> ReviewQualityOut:
    """Champion and shadow quality on the audit slice of the latest reviews (see `estimator`)."""
    deployment = await existing(ctx.pool, key.project_id, deployment_id)
    fraction = deployment.review_queue.audit_fraction
    rows = await deployment_figures.latest_reviews(ctx.pool, key.project_id, deployment_id, window)
    reviews = [
        AuditedReview(
            prediction_id=row["prediction_id"],
            reviewed=stored_reviewed(row),
        )
        for row in rows
    ]
    return ReviewQualityOut(
        audit_fraction=fraction,
        window=window,
        reviewed=len(reviews),
        audit_reviewed=sum(in_audit(r.prediction_id, fraction) for r in reviews),
        champion=audit_quality(reviews, fraction, Role.CHAMPION),
        shadow=audit_quality(reviews, fraction, Role.SHADOW),
        champion_all_reviews=role_quality([r.reviewed for r in reviews], Role.CHAMPION),
    )
