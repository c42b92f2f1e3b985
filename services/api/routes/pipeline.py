"""A deployment's pipeline settings: training data (and its reference job), feedback loop, continuous
training, continuous deployment."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from schemas.api.common import Page as PageOf
from schemas.api.deployments import (
    ActiveToggle,
    ContinuousDeploymentOut,
    ContinuousDeploymentRequest,
    ContinuousTrainingOut,
    ContinuousTrainingRequest,
    TrainingDataOut,
    TrainingDataRequest,
)
from schemas.api.registry import DatasetVersionOut
from schemas.events import DeploymentChange, JobKind
from schemas.topics import Topic
from schemas.vocabulary import ReferenceStatus, TargetType
from services.common.db.repositories import deployments, jobs, registry
from services.common.db.repositories.base import Db
from services.common.domain.deployments import ContinuousTraining, Deployment
from services.common.domain.job_events import job_requested
from services.common.http import ApiError

from ..context import Ctx, Page, ReadKey, WriteKey
from ..errors import WRITE_ERRORS, not_found
from ..outbox import change
from ..rules import feedback_mismatch
from .deployments import continuous_training_out, deployment_out, existing, labels_of, published

router = APIRouter(prefix="/v1/deployments/{deployment_id}", tags=["pipeline settings"])


async def _training_data(db: Db, deployment: Deployment) -> TrainingDataOut:
    return (await deployment_out(db, deployment)).training_data


@router.put("/training-data", status_code=202, responses=WRITE_ERRORS)
async def set_training_data(
    ctx: Ctx, key: WriteKey, deployment_id: UUID, body: TrainingDataRequest
) -> TrainingDataOut:
    """Point the deployment at its training data and request the reference job that scores against it.
    The same dataset version again, while its reference is computing or ready, changes nothing."""
    async with change(ctx) as current:
        deployment = await deployments.lock_deployment(current.conn, key.project_id, deployment_id)
        version = await registry.get_dataset_version(current.conn, key.project_id, body.dataset_version_id)
        if version is None:
            raise not_found("body.dataset_version_id", "dataset version")
        if version.detection_type != deployment.detection_type:
            raise ApiError(
                409,
                "body.dataset_version_id",
                f"dataset version holds {version.detection_type} but the deployment is "
                f"{deployment.detection_type}",
            )
        if deployment.training_dataset_version_id != version.id or deployment.reference_status not in (
            ReferenceStatus.COMPUTING,
            ReferenceStatus.READY,
        ):
            deployment = await deployments.set_training_data(
                current.conn, key.project_id, deployment_id, version.id
            )
            job, run, _ = await jobs.create_job(
                current.conn,
                key.project_id,
                JobKind.REFERENCE,
                target_type=TargetType.DEPLOYMENT,
                target_id=deployment_id,
                parameters={"dataset_version_id": str(version.id)},
                launched_by_key_id=key.id,
            )
            published(current, deployment, DeploymentChange.SETTINGS_CHANGED)
            current.publish(Topic.JOBS, job_requested(job, run))
        answer = await _training_data(current.conn, deployment)
    return answer


@router.get("/training-data")
async def get_training_data(ctx: Ctx, key: ReadKey, deployment_id: UUID) -> TrainingDataOut:
    return await _training_data(ctx.pool, await existing(ctx.pool, key.project_id, deployment_id))


async def _feedback_loop(db: Db, deployment: Deployment, page: Page) -> PageOf[DatasetVersionOut]:
    ids = deployment.feedback_dataset_version_ids
    versions = [await registry.get_dataset_version(db, deployment.project_id, i) for i in ids]
    return PageOf[DatasetVersionOut](
        items=[
            DatasetVersionOut.model_validate(v) for v in versions[page.offset : page.offset + page.limit] if v
        ],
        total=len(ids),
    )


@router.get("/feedback-loop")
async def get_feedback_loop(
    ctx: Ctx, key: ReadKey, page: Page, deployment_id: UUID
) -> PageOf[DatasetVersionOut]:
    return await _feedback_loop(ctx.pool, await existing(ctx.pool, key.project_id, deployment_id), page)


@router.put("/feedback-loop/{dataset_version_id}", responses=WRITE_ERRORS)
async def attach_to_feedback_loop(
    ctx: Ctx, key: WriteKey, page: Page, deployment_id: UUID, dataset_version_id: UUID
) -> PageOf[DatasetVersionOut]:
    """Let reviewed predictions be submitted to this dataset version: it must hold what the champion
    predicts (same detection type, same labelmap)."""
    async with change(ctx) as current:
        deployment = await deployments.lock_deployment(current.conn, key.project_id, deployment_id)
        version = await registry.get_dataset_version(current.conn, key.project_id, dataset_version_id)
        if version is None:
            raise not_found("path.dataset_version_id", "dataset version")
        assert deployment.champion_model_version_id is not None  # a deployment is created with one
        champion = await registry.get_model_version(
            current.conn, key.project_id, deployment.champion_model_version_id
        )
        assert champion is not None  # a foreign key keeps it
        mismatch = feedback_mismatch(
            champion,
            await labels_of(current.conn, key.project_id, champion.labelmap_id),
            version,
            await labels_of(current.conn, key.project_id, version.labelmap_id),
        )
        if mismatch is not None:
            raise ApiError(409, "path.dataset_version_id", mismatch)
        deployment = await deployments.attach_feedback_dataset_version(
            current.conn, key.project_id, deployment_id, dataset_version_id
        )
        published(current, deployment, DeploymentChange.SETTINGS_CHANGED)
        answer = await _feedback_loop(current.conn, deployment, page)
    return answer


@router.delete("/feedback-loop/{dataset_version_id}", status_code=204, responses=WRITE_ERRORS)
async def detach_from_feedback_loop(
    ctx: Ctx, key: WriteKey, deployment_id: UUID, dataset_version_id: UUID
) -> Response:
    async with change(ctx) as current:
        deployment = await deployments.detach_feedback_dataset_version(
            current.conn, key.project_id, deployment_id, dataset_version_id
        )
        published(current, deployment, DeploymentChange.SETTINGS_CHANGED)
    return Response(status_code=204)


@router.put("/continuous-training", responses=WRITE_ERRORS)
async def set_continuous_training(
    ctx: Ctx, key: WriteKey, deployment_id: UUID, body: ContinuousTrainingRequest
) -> ContinuousTrainingOut:
    # Training runs in the key's own project: naming another one answers as if it did not exist.
    if body.project_id is not None and body.project_id != key.project_id:
        raise not_found("body.project_id", "project")
    async with change(ctx) as current:
        deployment = await deployments.lock_deployment(current.conn, key.project_id, deployment_id)
        for alias, dataset_version_id in body.dataset_versions.items():
            if await registry.get_dataset_version(current.conn, key.project_id, dataset_version_id) is None:
                raise not_found(f"body.dataset_versions.{alias}", "dataset version")
        parameters = body.training_parameters
        if parameters is None:  # default: what the champion was trained with
            assert deployment.champion_model_version_id is not None
            champion = await registry.get_model_version(
                current.conn, key.project_id, deployment.champion_model_version_id
            )
            parameters = champion.training_parameters if champion else {}
        deployment = await deployments.configure_continuous_training(
            current.conn,
            key.project_id,
            deployment_id,
            ContinuousTraining(
                project_id=key.project_id,
                dataset_versions=body.dataset_versions,
                parameters=parameters,
                trigger_threshold=body.threshold,
                trigger_policy=body.policy,
                active=body.active,
            ),
        )
        published(current, deployment, DeploymentChange.SETTINGS_CHANGED)
    return await continuous_training_out(ctx.pool, deployment)


@router.patch("/continuous-training", responses=WRITE_ERRORS)
async def toggle_continuous_training(
    ctx: Ctx, key: WriteKey, deployment_id: UUID, body: ActiveToggle
) -> ContinuousTrainingOut:
    async with change(ctx) as current:
        deployment = await deployments.lock_deployment(current.conn, key.project_id, deployment_id)
        settings = deployment.continuous_training
        if body.active and not settings.has_trigger:
            raise ApiError(
                409,
                "body.active",
                "continuous training has no threshold or policy rule yet: set it with PUT first",
            )
        deployment = await deployments.configure_continuous_training(
            current.conn, key.project_id, deployment_id, settings.model_copy(update={"active": body.active})
        )
        published(current, deployment, DeploymentChange.SETTINGS_CHANGED)
    return await continuous_training_out(ctx.pool, deployment)


@router.put("/continuous-deployment", responses=WRITE_ERRORS)
async def set_continuous_deployment(
    ctx: Ctx, key: WriteKey, deployment_id: UUID, body: ContinuousDeploymentRequest
) -> ContinuousDeploymentOut:
    async with change(ctx) as current:
        deployment = await deployments.configure_continuous_deployment(
            current.conn,
            key.project_id,
            deployment_id,
            body.policy,
            active=body.active,
        )
        published(current, deployment, DeploymentChange.SETTINGS_CHANGED)
    return ContinuousDeploymentOut(policy=deployment.cd_policy.value, active=deployment.cd_active)


@router.patch("/continuous-deployment", responses=WRITE_ERRORS)
async def toggle_continuous_deployment(
    ctx: Ctx, key: WriteKey, deployment_id: UUID, body: ActiveToggle
) -> ContinuousDeploymentOut:
    async with change(ctx) as current:
        deployment = await deployments.lock_deployment(current.conn, key.project_id, deployment_id)
        deployment = await deployments.configure_continuous_deployment(
            current.conn, key.project_id, deployment_id, deployment.cd_policy, active=body.active
        )
        published(current, deployment, DeploymentChange.SETTINGS_CHANGED)
    return ContinuousDeploymentOut(policy=deployment.cd_policy.value, active=deployment.cd_active)
