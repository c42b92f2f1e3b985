"""Experiments, their artifacts, and exporting one as a model version."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from fastapi import APIRouter

from schemas.api.common import Name
from schemas.api.common import Page as PageOf
from schemas.api.experiments import (
    ArtifactCreate,
    ArtifactOut,
    ExperimentCreate,
    ExperimentOut,
    ExportRequest,
)
from schemas.api.registry import ModelVersionOut
from services.common.db.repositories import experiments, registry
from services.common.db.repositories.base import transaction
from services.common.domain.model_export import exported_version
from services.common.exported_io import artifact_io
from services.common.http import ApiError

from ..context import Ctx, Page, ReadKey, WriteKey
from ..errors import WRITE_ERRORS, not_found
from ..objects import uploaded
from ..servable import check_registered

router = APIRouter(prefix="/v1", tags=["experiments"])


@router.post("/experiments", status_code=201, responses=WRITE_ERRORS)
async def create_experiment(ctx: Ctx, key: WriteKey, body: ExperimentCreate) -> ExperimentOut:
    if body.base_model_version_id and not await registry.get_model_version(
        ctx.pool, key.project_id, body.base_model_version_id
    ):
        raise not_found("body.base_model_version_id", "model version")
    for alias, dataset_version_id in body.dataset_versions.items():
        if await registry.get_dataset_version(ctx.pool, key.project_id, dataset_version_id) is None:
            raise not_found(f"body.dataset_versions.{alias}", "dataset version")
    experiment = await experiments.create_experiment(
        ctx.pool,
        key.project_id,
        body.name,
        base_model_version_id=body.base_model_version_id,
        parameters=body.parameters,
        dataset_versions=body.dataset_versions,
    )
    return ExperimentOut.model_validate(experiment)


@router.get("/experiments")
async def list_experiments(
    ctx: Ctx, key: ReadKey, page: Page, name: Name | None = None
) -> PageOf[ExperimentOut]:
    found, total = await experiments.list_experiments(
        ctx.pool, key.project_id, name=name, limit=page.limit, offset=page.offset
    )
    return PageOf[ExperimentOut](items=[ExperimentOut.model_validate(e) for e in found], total=total)


@router.get("/experiments/{experiment_id}")
async def get_experiment(ctx: Ctx, key: ReadKey, experiment_id: UUID) -> ExperimentOut:
    experiment = await experiments.get_experiment(ctx.pool, key.project_id, experiment_id)
    if experiment is None:
        raise not_found("path.experiment_id", "experiment")
    return ExperimentOut.model_validate(experiment)


@router.post("/experiments/{experiment_id}/artifacts", status_code=201, responses=WRITE_ERRORS)
async def add_artifact(ctx: Ctx, key: WriteKey, experiment_id: UUID, body: ArtifactCreate) -> ArtifactOut:
    if await experiments.get_experiment(ctx.pool, key.project_id, experiment_id) is None:
        raise not_found("path.experiment_id", "experiment")
    sha256, size = await uploaded(ctx, key.project_id, body.object_key, "body.object_key")
    artifact = await experiments.add_artifact(
        ctx.pool,
        key.project_id,
        experiment_id,
        name=body.name,
        object_key=body.object_key,
        sha256=sha256,
        size_bytes=size,
    )
    return ArtifactOut.model_validate(artifact)


@router.post("/experiments/{experiment_id}/export", status_code=201, responses=WRITE_ERRORS)
async def export_as_model(
    ctx: Ctx, key: WriteKey, experiment_id: UUID, body: ExportRequest
) -> ModelVersionOut:
    """A new model version (of a new model, or of an existing one) made from the experiment."""
    project_id = key.project_id
    experiment = await experiments.get_experiment(ctx.pool, project_id, experiment_id)
    if experiment is None:
        raise not_found("path.experiment_id", "experiment")
    base = experiment.base_model_version_id and await registry.get_model_version(
        ctx.pool, project_id, experiment.base_model_version_id
    )
    if not base:
        raise ApiError(
            409,
            "path.experiment_id",
            "the experiment has no base model version to inherit a detection type from",
        )
    # The body's io wins over the one the experiment's trainer wrote (io.json), which wins over the base's.
    io = body.io
    if io is None:
        try:
            io = await artifact_io(ctx.store, experiment)
        except ValueError as exc:
            raise ApiError(409, "path.experiment_id", str(exc)) from None
    new = exported_version(experiment, base, version=body.version, description=body.description, io=io)
    await check_registered(ctx.pool, ctx.store, project_id, new)
    # The new model and its version appear together or not at all.
    async with transaction(ctx.pool) as conn:
        if body.model_id is not None:
            if await registry.get_model(conn, project_id, body.model_id) is None:
                raise not_found("body.model_id", "model")
            model_id = body.model_id
        else:
            assert body.model_name is not None  # the body requires one of them
            try:
                model = await registry.create_model(conn, project_id, body.model_name, body.model_description)
            except asyncpg.UniqueViolationError:
                raise ApiError(409, "body.model_name", "a model with this name already exists") from None
            model_id = model.id
        try:
            version = await registry.create_model_version(conn, project_id, model_id, new)
        except asyncpg.UniqueViolationError:
            raise ApiError(409, "body.version", "the model already has this version") from None
    return ModelVersionOut.model_validate(version)
