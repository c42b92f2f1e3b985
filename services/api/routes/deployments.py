"""Deployments: created from a model version; champion, shadow and threshold changes. Each change
publishes the deployment's routing state (DeploymentUpdated) to `deployments`."""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query

from schemas.api.common import Name
from schemas.api.common import Page as PageOf
from schemas.api.deployments import (
    ComparisonOut,
    ContinuousTrainingOut,
    DeploymentCreate,
    DeploymentOut,
    GateDecisionOut,
    ModelVersionChoice,
    ShadowReplayOut,
    ThresholdUpdate,
)
from schemas.events import DeploymentChange, DeploymentKind, JobKind
from schemas.predictions import DetectionType
from schemas.topics import Topic
from services.common.db.repositories import (
    deletions,
    deployment_figures,
    deployments,
    gate_decisions,
    jobs,
    registry,
    shadow_replays,
)
from services.common.db.repositories.base import Db, NotFound
from services.common.domain.deployments import Deployment
from services.common.domain.registry import ModelVersion
from services.common.http import ApiError

from ..comparison import compare
from ..context import Ctx, Page, ReadKey, WriteKey
from ..errors import WRITE_ERRORS, not_found
from ..outbox import Change, change
from ..servable import check_served

router = APIRouter(prefix="/v1", tags=["deployments"])
MAX_COMPARISON_WINDOW = 5000


async def continuous_training_out(db: Db, deployment: Deployment) -> ContinuousTrainingOut:
    ct = deployment.continuous_training
    latest = await deployment_figures.latest_trigger(
        db, ct.project_id or deployment.project_id, deployment.id
    )
    return ContinuousTrainingOut(
        project_id=ct.project_id,
        dataset_versions=ct.dataset_versions,
        training_parameters=ct.parameters,
        threshold=ct.trigger_threshold,
        policy=ct.trigger_policy,
        active=ct.active,
        submitted_since_training=await deployment_figures.submitted_since_training(
            db, deployment.project_id, deployment.id
        ),
        last_request_id=latest[0] if latest else None,
        last_trigger=latest[1] if latest else None,
    )


async def deployment_out(db: Db, deployment: Deployment) -> DeploymentOut:
    reference_job = await jobs.latest_job(db, deployment.project_id, JobKind.REFERENCE, deployment.id)
    return DeploymentOut.model_validate(
        deployment.model_dump()
        | {
            "training_data": {
                "dataset_version_id": deployment.training_dataset_version_id,
                "status": deployment.reference_status,
                "reason": deployment.reference_reason,
                "job_id": reference_job.id if reference_job else None,
            },
            "feedback_loop": {"dataset_version_ids": deployment.feedback_dataset_version_ids},
            "continuous_training": await continuous_training_out(db, deployment),
            "continuous_deployment": {"policy": deployment.cd_policy, "active": deployment.cd_active},
        }
    )


async def existing(db: Db, project_id: UUID, deployment_id: UUID) -> Deployment:
    deployment = await deployments.get_deployment(db, project_id, deployment_id)
    if deployment is None:
        raise not_found("path.deployment_id", "deployment")
    return deployment


async def _model_version_for(db: Db, deployment: Deployment, model_version_id: UUID) -> ModelVersion:
    version = await registry.get_model_version(db, deployment.project_id, model_version_id)
    if version is None:
        raise not_found("body.model_version_id", "model version")
    if version.detection_type != deployment.detection_type:
        raise ApiError(
            409,
            "body.model_version_id",
            f"model version predicts {version.detection_type} but the deployment is "
            f"{deployment.detection_type}",
        )
    return version


def refuse_classification_threshold(detection_type: DetectionType, threshold: float) -> None:
    """A classification answers every class with its score, so a confidence threshold would be stored
    and ignored: refused instead (0, the default, means none)."""
    if detection_type == DetectionType.CLASSIFICATION and threshold > 0:
        raise ApiError(
            422,
            "body.confidence_threshold",
            "a classification deployment answers every class with its score: it takes no confidence "
            "threshold (leave it 0)",
        )


async def labels_of(db: Db, project_id: UUID, labelmap_id: UUID | None) -> list[str] | None:
    labelmap = labelmap_id and await registry.get_labelmap(db, project_id, labelmap_id)
    return labelmap.labels if labelmap else None


async def champion_labels(db: Db, deployment: Deployment) -> list[str] | None:
    """The labels of the champion's labelmap (None: it has none)."""
    if deployment.champion_model_version_id is None:
        return None
    champion = await registry.get_model_version(
        db, deployment.project_id, deployment.champion_model_version_id
    )
    return await labels_of(db, deployment.project_id, champion.labelmap_id if champion else None)


def published(current: Change, deployment: Deployment, what: DeploymentChange) -> Deployment:
    current.publish(Topic.DEPLOYMENTS, deployment.updated_event(what))
    return deployment


@router.post("/deployments", status_code=201, responses=WRITE_ERRORS)
async def create_deployment(ctx: Ctx, key: WriteKey, body: DeploymentCreate) -> DeploymentOut:
    version = await registry.get_model_version(ctx.pool, key.project_id, body.model_version_id)
    if version is None:
        raise not_found("body.model_version_id", "model version")
    refuse_classification_threshold(version.detection_type, body.confidence_threshold)
    if body.kind == DeploymentKind.SERVED:
        await check_served(ctx.pool, ctx.store, version)
    async with change(ctx) as current:
        try:
            deployment = await deployments.create_deployment(
                current.conn,
                key.project_id,
                body.name,
                kind=body.kind,
                detection_type=version.detection_type,
                champion_model_version_id=version.id,
                confidence_threshold=body.confidence_threshold,
            )
        except asyncpg.UniqueViolationError:
            raise ApiError(409, "body.name", "a deployment with this name already exists") from None
        published(current, deployment, DeploymentChange.CREATED)
    return await deployment_out(ctx.pool, deployment)


@router.get("/deployments")
async def list_deployments(
    ctx: Ctx, key: ReadKey, page: Page, name: Name | None = None
) -> PageOf[DeploymentOut]:
    found = [
        d
        for d in await deployments.list_deployments(ctx.pool, key.project_id)
        if name is None or d.name == name
    ]
    items = [await deployment_out(ctx.pool, d) for d in found[page.offset : page.offset + page.limit]]
    return PageOf[DeploymentOut](items=items, total=len(found))


@router.get("/deployments/{deployment_id}")
async def get_deployment(ctx: Ctx, key: ReadKey, deployment_id: UUID) -> DeploymentOut:
    return await deployment_out(ctx.pool, await existing(ctx.pool, key.project_id, deployment_id))


@router.delete("/deployments/{deployment_id}", status_code=204, responses=WRITE_ERRORS)
async def delete_deployment(ctx: Ctx, key: WriteKey, deployment_id: UUID) -> None:
    """With its predictions, drift reports and references; serving stops routing it (DELETED). 409
    while a job on it is active."""
    async with change(ctx) as current:
        try:
            deployment = await deletions.delete_deployment(current.conn, key.project_id, deployment_id)
        except NotFound:
            raise not_found("path.deployment_id", "deployment") from None
        published(current, deployment, DeploymentChange.DELETED)


@router.put("/deployments/{deployment_id}/champion", responses=WRITE_ERRORS)
async def set_champion(
    ctx: Ctx, key: WriteKey, deployment_id: UUID, body: ModelVersionChoice
) -> DeploymentOut:
    async with change(ctx) as current:
        deployment = await deployments.lock_deployment(current.conn, key.project_id, deployment_id)
        version = await _model_version_for(current.conn, deployment, body.model_version_id)
        if deployment.kind == DeploymentKind.SERVED:
            await check_served(current.conn, ctx.store, version)
        if body.model_version_id == deployment.shadow_model_version_id:
            raise ApiError(
                409, "body.model_version_id", "this model version is the shadow: promote the shadow instead"
            )
        deployment = await deployments.set_champion(
            current.conn, key.project_id, deployment_id, body.model_version_id
        )
        published(current, deployment, DeploymentChange.CHAMPION_SET)
    return await deployment_out(ctx.pool, deployment)


@router.put("/deployments/{deployment_id}/shadow", responses=WRITE_ERRORS)
async def set_shadow(ctx: Ctx, key: WriteKey, deployment_id: UUID, body: ModelVersionChoice) -> DeploymentOut:
    async with change(ctx) as current:
        deployment = await deployments.lock_deployment(current.conn, key.project_id, deployment_id)
        version = await _model_version_for(current.conn, deployment, body.model_version_id)
        if deployment.kind == DeploymentKind.SERVED:
            await check_served(current.conn, ctx.store, version)
        if body.model_version_id == deployment.champion_model_version_id:
            raise ApiError(409, "body.model_version_id", "this model version is already the champion")
        deployment = await deployments.set_shadow(
            current.conn, key.project_id, deployment_id, body.model_version_id
        )
        published(current, deployment, DeploymentChange.SHADOW_SET)
    return await deployment_out(ctx.pool, deployment)


@router.delete("/deployments/{deployment_id}/shadow", responses=WRITE_ERRORS)
async def remove_shadow(ctx: Ctx, key: WriteKey, deployment_id: UUID) -> DeploymentOut:
    async with change(ctx) as current:
        deployment = await deployments.set_shadow(current.conn, key.project_id, deployment_id, None)
        published(current, deployment, DeploymentChange.SHADOW_REMOVED)
    return await deployment_out(ctx.pool, deployment)


@router.post("/deployments/{deployment_id}/shadow/promote", responses=WRITE_ERRORS)
async def promote_shadow(ctx: Ctx, key: WriteKey, deployment_id: UUID) -> DeploymentOut:
    async with change(ctx) as current:
        deployment = await deployments.promote_shadow(current.conn, key.project_id, deployment_id)
        published(current, deployment, DeploymentChange.SHADOW_PROMOTED)
    return await deployment_out(ctx.pool, deployment)


@router.put("/deployments/{deployment_id}/threshold", responses=WRITE_ERRORS)
async def set_threshold(ctx: Ctx, key: WriteKey, deployment_id: UUID, body: ThresholdUpdate) -> DeploymentOut:
    refuse_classification_threshold(
        (await existing(ctx.pool, key.project_id, deployment_id)).detection_type, body.confidence_threshold
    )
    async with change(ctx) as current:
        deployment = await deployments.set_confidence_threshold(
            current.conn, key.project_id, deployment_id, body.confidence_threshold
        )
        published(current, deployment, DeploymentChange.SETTINGS_CHANGED)
    return await deployment_out(ctx.pool, deployment)


@router.get("/deployments/{deployment_id}/comparison")
async def compare_champion_and_shadow(
    ctx: Ctx,
    key: ReadKey,
    deployment_id: UUID,
    window: Annotated[int, Query(ge=1, le=MAX_COMPARISON_WINDOW, description="Latest predictions.")] = 500,
) -> ComparisonOut:
    deployment = await existing(ctx.pool, key.project_id, deployment_id)
    champion, shadow = deployment.champion_model_version_id, deployment.shadow_model_version_id
    answers = (
        await deployment_figures.latest_answers(
            ctx.pool, key.project_id, deployment_id, champion, shadow, window
        )
        if champion is not None
        else []
    )
    # Off the event loop: mask AP rasterises every reviewed polygon (a second or so for thousands).
    return await asyncio.to_thread(compare, answers, champion, shadow, window)


@router.get("/deployments/{deployment_id}/gate-decisions")
async def list_gate_decisions(
    ctx: Ctx,
    key: ReadKey,
    deployment_id: UUID,
    limit: Annotated[int, Query(ge=1, le=MAX_COMPARISON_WINDOW, description="Latest decisions.")] = 50,
) -> list[GateDecisionOut]:
    """The promotion gate's decisions, newest first, each with its figures and reason."""
    await existing(ctx.pool, key.project_id, deployment_id)
    found = await gate_decisions.list_decisions(ctx.pool, key.project_id, deployment_id, limit)
    return [GateDecisionOut.model_validate(d) for d in found]


@router.get("/deployments/{deployment_id}/shadow-replay")
async def get_shadow_replay(ctx: Ctx, key: ReadKey, deployment_id: UUID) -> ShadowReplayOut:
    """The deployment's latest shadow replay and its progress (404 before its first shadow was set)."""
    await existing(ctx.pool, key.project_id, deployment_id)
    replay = await shadow_replays.latest(ctx.pool, key.project_id, deployment_id)
    if replay is None:
        raise not_found("path.deployment_id", "shadow replay")
    return ShadowReplayOut.model_validate(replay)
