"""Predicted assets: the review queue, one asset with its image, review, and submission to a
feedback-loop dataset version."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from schemas.api.common import Page as PageOf
from schemas.api.predictions import (
    PredictedAssetOut,
    PredictionCount,
    ReviewRequest,
    SubmitOut,
    SubmitRequest,
    SubmitReviewedRequest,
    Submitted,
)
from schemas.events import MAX_TAGS, AssetSubmitted, PredictionReviewed, Tag
from schemas.topics import Topic
from schemas.vocabulary import PredictionOrder, ReviewStatus
from services.common.db.repositories import objects, predicted_assets, registry
from services.common.domain.acquisition import in_audit
from services.common.domain.deployments import Deployment
from services.common.domain.predictions import PredictedAsset, PredictionFilter
from services.common.domain.projects import ApiKey
from services.common.domain.review_state import IllegalTransition
from services.common.http import ApiError

from ..context import Context, Ctx, Page, ReadKey, WriteKey
from ..errors import WRITE_ERRORS, not_found
from ..outbox import Change, change
from ..rules import annotation_problem
from .deployments import champion_labels, existing

router = APIRouter(prefix="/v1", tags=["predicted assets"])

Score = Annotated[float | None, Query(ge=0.0, le=1.0)]


def grid_filter(
    status: ReviewStatus | None = None,
    since: Annotated[datetime | None, Query(description="Logged at or after (inclusive).")] = None,
    until: Annotated[datetime | None, Query(description="Logged before (exclusive).")] = None,
    predicted_since: Annotated[
        datetime | None,
        Query(description="Predicted at or after (inclusive): the time monitoring and drift windows use."),
    ] = None,
    predicted_until: Annotated[datetime | None, Query(description="Predicted before (exclusive).")] = None,
    min_outlier_score: Score = None,
    max_outlier_score: Score = None,
    tags: Annotated[
        list[Tag] | None, Query(max_length=MAX_TAGS, description="Repeatable; all must match.")
    ] = None,
) -> PredictionFilter:
    """The review grid's filter, the same for listing, counting and submitting what it shows."""
    return PredictionFilter(
        status=status,
        created_from=since,
        created_until=until,
        predicted_from=predicted_since,
        predicted_until=predicted_until,
        min_outlier_score=min_outlier_score,
        max_outlier_score=max_outlier_score,
        tags=tags or [],
    )


GridFilter = Annotated[PredictionFilter, Depends(grid_filter)]


@router.get("/deployments/{deployment_id}/predictions")
async def list_predictions(
    ctx: Ctx,
    key: ReadKey,
    page: Page,
    deployment_id: UUID,
    where: GridFilter,
    order: Annotated[
        PredictionOrder | None,
        Query(
            description="Default: `most_instructive` with `status=TO_REVIEW` (the review queue), `newest` "
            "otherwise. `most_instructive` shows near-duplicates once, with their count in `duplicates`."
        ),
    ] = None,
) -> PageOf[PredictedAssetOut]:
    deployment = await existing(ctx.pool, key.project_id, deployment_id)
    if order is None:
        order = (
            PredictionOrder.MOST_INSTRUCTIVE
            if where.status is ReviewStatus.TO_REVIEW
            else PredictionOrder.NEWEST
        )
    queue = order is PredictionOrder.MOST_INSTRUCTIVE
    if queue:
        found = await predicted_assets.list_queue(
            ctx.pool, key.project_id, deployment_id, where, order=order, limit=page.limit, offset=page.offset
        )
    else:
        found = [
            (p, None)
            for p in await predicted_assets.list_predictions(
                ctx.pool,
                key.project_id,
                deployment_id,
                where,
                order=order,
                limit=page.limit,
                offset=page.offset,
            )
        ]
    total = await predicted_assets.count_predictions(
        ctx.pool, key.project_id, deployment_id, where, distinct_images=queue
    )
    urls = await _image_urls(ctx, key.project_id, [p.image_object_key for p, _ in found])
    items = [_out(deployment, p, image_url=u, duplicates=n) for (p, n), u in zip(found, urls, strict=True)]
    return PageOf[PredictedAssetOut](items=items, total=total)


def _out(
    deployment: Deployment,
    asset: PredictedAsset,
    *,
    image_url: str | None = None,
    duplicates: int | None = None,
) -> PredictedAssetOut:
    """The answer for a predicted asset of `deployment`, marked when it is in the audit slice."""
    return PredictedAssetOut.model_validate(
        asset.model_dump()
        | {
            "image_url": image_url,
            "duplicates": duplicates,
            "audit": in_audit(asset.prediction_id, deployment.review_queue.audit_fraction),
        }
    )


@router.get("/deployments/{deployment_id}/predictions/count")
async def count_predictions(
    ctx: Ctx, key: ReadKey, deployment_id: UUID, where: GridFilter
) -> PredictionCount:
    """How many predicted assets the filter matches, without listing them (with `status=REVIEWED`: what
    `submit-reviewed` with the same filter would submit)."""
    await existing(ctx.pool, key.project_id, deployment_id)
    return PredictionCount(
        count=await predicted_assets.count_predictions(ctx.pool, key.project_id, deployment_id, where)
    )


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
    return _out(await existing(ctx.pool, key.project_id, asset.deployment_id), asset, image_url=url)


@router.put("/predictions/{prediction_id}/review", responses=WRITE_ERRORS)
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
    return _out(deployment, asset)


async def _feedback_version(ctx: Context, project_id: UUID, deployment: Deployment, version_id: UUID) -> None:
    """404 for a dataset version that does not exist, 409 for one outside the deployment's feedback loop."""
    if version_id not in deployment.feedback_dataset_version_ids:
        if await registry.get_dataset_version(ctx.pool, project_id, version_id) is None:
            raise not_found("body.dataset_version_id", "dataset version")
        raise ApiError(
            409,
            "body.dataset_version_id",
            "the dataset version is not attached to this deployment's feedback loop",
        )


def _announce(current: Change, deployment_id: UUID, version_id: UUID, submitted: list[Submitted]) -> None:
    """One `feedback` event per newly submitted prediction: what the pipeline counts toward training."""
    for done in submitted:
        current.publish(
            Topic.FEEDBACK,
            AssetSubmitted(
                deployment_id=deployment_id,
                prediction_id=done.prediction_id,
                dataset_version_id=version_id,
                asset_id=done.asset_id,
            ),
        )


async def _submit_matching(
    current: Change, key: ApiKey, deployment_id: UUID, where: PredictionFilter, version_id: UUID
) -> list[Submitted]:
    """Every REVIEWED prediction the filter matches, submitted at once and announced."""
    pairs = await predicted_assets.submit_all_reviewed(
        current.conn, key.project_id, deployment_id, where, version_id, submitted_by=key.name
    )
    submitted = [Submitted(prediction_id=p, asset_id=a) for p, a in pairs]
    _announce(current, deployment_id, version_id, submitted)
    return submitted


@router.post("/deployments/{deployment_id}/predictions/submit", responses=WRITE_ERRORS)
async def submit(ctx: Ctx, key: WriteKey, deployment_id: UUID, body: SubmitRequest) -> SubmitOut:
    """Add reviewed predictions to a feedback-loop dataset version, all of them or none: each becomes
    SUBMITTED together with its asset and annotation, in one transaction; one `feedback` event each.
    Submitting again what was already submitted there answers it again and publishes nothing."""
    project_id = key.project_id
    deployment = await existing(ctx.pool, project_id, deployment_id)
    await _feedback_version(ctx, project_id, deployment, body.dataset_version_id)
    async with change(ctx) as current:
        if body.prediction_ids is None:
            return SubmitOut(
                submitted=await _submit_matching(
                    current, key, deployment_id, PredictionFilter(), body.dataset_version_id
                )
            )
        try:
            submissions = await predicted_assets.submit_reviewed(
                current.conn,
                project_id,
                deployment_id,
                list(dict.fromkeys(body.prediction_ids)),
                body.dataset_version_id,
                submitted_by=key.name,
            )
        except predicted_assets.UnknownPrediction as exc:
            field = _field(body.prediction_ids, exc.prediction_id)
            raise not_found(field, f"prediction {exc.prediction_id} of this deployment") from None
        except IllegalTransition as exc:
            assert exc.prediction_id is not None  # submit_reviewed names the prediction
            raise ApiError(409, _field(body.prediction_ids, exc.prediction_id), str(exc)) from None
        submitted = [Submitted(prediction_id=s.prediction_id, asset_id=s.asset_id) for s in submissions]
        _announce(
            current,
            deployment_id,
            body.dataset_version_id,
            [done for done, s in zip(submitted, submissions, strict=True) if s.newly_submitted],
        )
    return SubmitOut(submitted=submitted)


def _field(prediction_ids: list[UUID], prediction_id: UUID) -> str:
    """The request field that named the prediction (looked up once, for the error only)."""
    return f"body.prediction_ids[{prediction_ids.index(prediction_id)}]"


@router.post("/deployments/{deployment_id}/predictions/submit-reviewed", responses=WRITE_ERRORS)
async def submit_reviewed(
    ctx: Ctx, key: WriteKey, deployment_id: UUID, where: GridFilter, body: SubmitReviewedRequest
) -> SubmitOut:
    """Submit every REVIEWED prediction the grid's filter matches (its `status` is ignored), across all
    its pages, to a feedback-loop dataset version, in one transaction; one `feedback` event each. Ask
    `GET .../predictions/count?status=REVIEWED` with the same filter for how many first. Repeating it
    submits nothing more (those are SUBMITTED now): it answers an empty list."""
    deployment = await existing(ctx.pool, key.project_id, deployment_id)
    await _feedback_version(ctx, key.project_id, deployment, body.dataset_version_id)
    async with change(ctx) as current:
        submitted = await _submit_matching(current, key, deployment_id, where, body.dataset_version_id)
    return SubmitOut(submitted=submitted)
