"""Predicted assets: the review queue, one asset with its image, review, and submission to a
feedback-loop dataset version."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from schemas.api.common import Page as PageOf
from schemas.api.predictions import (
    MAX_SUBMIT,
    PredictedAssetOut,
    ReviewRequest,
    SubmitOut,
    SubmitRequest,
    Submitted,
)
from schemas.events import AssetSubmitted, PredictionReviewed
from schemas.topics import Topic
from schemas.vocabulary import PredictionOrder, ReviewStatus
from services.common.db.repositories import objects, predicted_assets, registry
from services.common.domain.predictions import PredictionFilter
from services.common.domain.review_state import IllegalTransition
from services.common.http import ApiError

from ..context import Context, Ctx, Page, ReadKey, WriteKey
from ..errors import not_found
from ..outbox import change
from ..rules import annotation_problem
from .deployments import champion_labels, existing

router = APIRouter(prefix="/v1", tags=["predicted assets"])

Score = Annotated[float | None, Query(ge=0.0, le=1.0)]


@router.get("/deployments/{deployment_id}/predictions")
async def list_predictions(
    ctx: Ctx,
    key: ReadKey,
    page: Page,
    deployment_id: UUID,
    status: ReviewStatus | None = None,
    since: Annotated[datetime | None, Query(description="Logged at or after (inclusive).")] = None,
    until: Annotated[datetime | None, Query(description="Logged before (exclusive).")] = None,
    min_outlier_score: Score = None,
    max_outlier_score: Score = None,
    tags: Annotated[list[str] | None, Query(description="Repeatable; all must match.")] = None,
    order: PredictionOrder = PredictionOrder.NEWEST,
) -> PageOf[PredictedAssetOut]:
    await existing(ctx.pool, key.project_id, deployment_id)
    where = PredictionFilter(
        status=status,
        created_from=since,
        created_until=until,
        min_outlier_score=min_outlier_score,
        max_outlier_score=max_outlier_score,
        tags=tags or [],
    )
    found = await predicted_assets.list_predictions(
        ctx.pool,
        key.project_id,
        deployment_id,
        where,
        order=order,
        limit=page.limit,
        offset=page.offset,
    )
    total = await predicted_assets.count_predictions(ctx.pool, key.project_id, deployment_id, where)
    urls = await _image_urls(ctx, key.project_id, [p.image_object_key for p in found])
    items = [
        PredictedAssetOut.model_validate(p.model_dump() | {"image_url": u})
        for p, u in zip(found, urls, strict=True)
    ]
    return PageOf[PredictedAssetOut](items=items, total=total)


async def _image_urls(ctx: Context, project_id: UUID, object_keys: list[str]) -> list[str | None]:
    """Presigned GETs of the images, for the project's own objects only (None for any other: a predicted
    asset never names another project's image, and a URL must not hand one out should it ever do)."""
    own = await objects.owned(ctx.pool, project_id, object_keys)
    expires = timedelta(seconds=ctx.settings.api_image_url_ttl_s)

    def sign() -> list[str | None]:  # signing is local: no request to the store per image
        return [ctx.store.presigned_get_url(k, expires) if k in own else None for k in object_keys]

    return await asyncio.to_thread(sign)


@router.get("/predictions/{prediction_id}")
async def get_prediction(ctx: Ctx, key: ReadKey, prediction_id: UUID) -> PredictedAssetOut:
    asset = await predicted_assets.get_prediction(ctx.pool, key.project_id, prediction_id)
    if asset is None:
        raise not_found("path.prediction_id", "prediction")
    [url] = await _image_urls(ctx, key.project_id, [asset.image_object_key])
    return PredictedAssetOut.model_validate(asset.model_dump() | {"image_url": url})


@router.put("/predictions/{prediction_id}/review")
async def review(ctx: Ctx, key: WriteKey, prediction_id: UUID, body: ReviewRequest) -> PredictedAssetOut:
    """TO_REVIEW -> REVIEWED (or a corrected review of a REVIEWED one); one `reviews` event. The review
    becomes ground truth in a feedback-loop dataset version: it must fit the deployment's detection type,
    the image, and the champion's labelmap."""
    found = await predicted_assets.get_prediction(ctx.pool, key.project_id, prediction_id)
    if found is None:
        raise not_found("path.prediction_id", "prediction")
    deployment = await existing(ctx.pool, key.project_id, found.deployment_id)
    problem = annotation_problem(
        body.review,
        deployment.detection_type,
        found.width,
        found.height,
        await champion_labels(ctx.pool, deployment),
    )
    if problem is not None:
        raise ApiError(422, f"body.review.{problem[0]}", problem[1])
    async with change(ctx) as current:
        try:
            asset = await predicted_assets.review(
                current.conn, key.project_id, prediction_id, body.review, reviewed_by=key.name
            )
        except IllegalTransition as exc:
            raise ApiError(409, "path.prediction_id", str(exc)) from None
        except ValueError as exc:  # the review does not fit the deployment or the image
            raise ApiError(422, "body.review", str(exc).removeprefix("review.")) from None
        current.publish(
            Topic.REVIEWS,
            PredictionReviewed(
                deployment_id=asset.deployment_id,
                prediction_id=asset.prediction_id,
                review=body.review,
                reviewed_by=key.name,
            ),
        )
    return PredictedAssetOut.model_validate(asset)


@router.post("/deployments/{deployment_id}/predictions/submit")
async def submit(ctx: Ctx, key: WriteKey, deployment_id: UUID, body: SubmitRequest) -> SubmitOut:
    """Add reviewed predictions to a feedback-loop dataset version, all of them or none: each becomes
    SUBMITTED together with its asset and annotation, in one transaction; one `feedback` event each.
    Submitting again what was already submitted there answers it again and publishes nothing."""
    project_id = key.project_id
    deployment = await existing(ctx.pool, project_id, deployment_id)
    if body.dataset_version_id not in deployment.feedback_dataset_version_ids:
        if await registry.get_dataset_version(ctx.pool, project_id, body.dataset_version_id) is None:
            raise not_found("body.dataset_version_id", "dataset version")
        raise ApiError(
            409,
            "body.dataset_version_id",
            "the dataset version is not attached to this deployment's feedback loop",
        )
    submitted = []
    async with change(ctx) as current:
        if body.prediction_ids is not None:
            selected = list(dict.fromkeys(body.prediction_ids))
            fields = {p: f"body.prediction_ids[{body.prediction_ids.index(p)}]" for p in selected}
        else:
            selected = await predicted_assets.reviewed_prediction_ids(
                current.conn, project_id, deployment_id, limit=MAX_SUBMIT
            )
            fields = {p: "body.all_reviewed" for p in selected}
        for prediction_id in selected:
            asset = await predicted_assets.get_prediction(current.conn, project_id, prediction_id)
            if asset is None or asset.deployment_id != deployment_id:
                raise not_found(fields[prediction_id], f"prediction {prediction_id} of this deployment")
            try:
                submission = await predicted_assets.submit_reviewed(
                    current.conn, project_id, prediction_id, body.dataset_version_id, submitted_by=key.name
                )
            except IllegalTransition as exc:
                raise ApiError(409, fields[prediction_id], f"prediction {prediction_id}: {exc}") from None
            result = submission.predicted_asset
            assert result.submitted_asset_id is not None  # SUBMITTED rows name their asset
            submitted.append(Submitted(prediction_id=prediction_id, asset_id=result.submitted_asset_id))
            if submission.newly_submitted:
                current.publish(
                    Topic.FEEDBACK,
                    AssetSubmitted(
                        deployment_id=deployment_id,
                        prediction_id=prediction_id,
                        dataset_version_id=body.dataset_version_id,
                        asset_id=result.submitted_asset_id,
                    ),
                )
    return SubmitOut(submitted=submitted)
