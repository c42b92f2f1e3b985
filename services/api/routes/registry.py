"""Uploads, labelmaps, datasets with their versions and assets, models with their versions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, File, Query, UploadFile

from schemas.api.common import Name
from schemas.api.common import Page as PageOf
from schemas.api.registry import (
    AnnotationOut,
    AssetCreate,
    AssetOut,
    DatasetCreate,
    DatasetOut,
    DatasetVersionCreate,
    DatasetVersionOut,
    LabelmapCreate,
    LabelmapOut,
    ModelCreate,
    ModelFileDownload,
    ModelOut,
    ModelVersionCreate,
    ModelVersionOut,
    UploadOut,
)
from schemas.object_keys import ObjectKind, parse_key
from schemas.vocabulary import Scope, UploadKind
from services.common.db.repositories import deletions, experiments, objects, registry
from services.common.db.repositories.base import NotFound, transaction
from services.common.domain.images import ImageTooLarge, InvalidImage, decode_image
from services.common.domain.registry import ModelFile, NewModelVersion
from services.common.http import ApiError
from services.common.storage.images import store_image

from ..context import Context, Ctx, Page, ReadKey, WriteKey, require_scope
from ..errors import UPLOAD_ERRORS, WRITE_ERRORS, not_found
from ..objects import read_uploaded, store_file, uploaded
from ..rules import annotation_problem
from ..servable import check_registered

router = APIRouter(prefix="/v1", tags=["registry"])


@router.post("/uploads", status_code=201, responses=UPLOAD_ERRORS)
async def upload(
    ctx: Ctx,
    key: WriteKey,
    file: Annotated[UploadFile, File(description="The image or model file.")],
    kind: Annotated[UploadKind, Query(description="images or models")],
) -> UploadOut:
    if kind is UploadKind.IMAGES:
        data = await file.read(ctx.settings.max_image_bytes + 1)
        try:
            image = await asyncio.to_thread(
                decode_image, data, ctx.settings.max_image_bytes, ctx.settings.max_image_pixels
            )
        except ImageTooLarge as exc:
            raise ApiError(413, "body.file", str(exc)) from None
        except InvalidImage as exc:
            raise ApiError(415, "body.file", str(exc)) from None
        ref = await store_image(ctx.store, data, image)
        await objects.record(ctx.pool, key.project_id, [ref.object_key])
        return UploadOut(
            object_key=ref.object_key, sha256=ref.sha256, size_bytes=len(data), content_type=ref.content_type
        )
    if file.size is not None and file.size > ctx.settings.api_max_upload_bytes:
        raise ApiError(
            413,
            "body.file",
            f"file is {file.size} bytes; at most {ctx.settings.api_max_upload_bytes} are accepted",
        )
    stored = await store_file(ctx.store, ObjectKind.MODELS, file.file, file.content_type)
    await objects.record(ctx.pool, key.project_id, [stored.key])
    return UploadOut(
        object_key=stored.key, sha256=stored.sha256, size_bytes=stored.size, content_type=stored.content_type
    )


@router.post("/labelmaps", status_code=201, responses=WRITE_ERRORS)
async def create_labelmap(ctx: Ctx, key: WriteKey, body: LabelmapCreate) -> LabelmapOut:
    labelmap = await registry.create_labelmap(ctx.pool, key.project_id, body.name, body.labels)
    return LabelmapOut.model_validate(labelmap)


@router.get("/labelmaps/{labelmap_id}")
async def get_labelmap(ctx: Ctx, key: ReadKey, labelmap_id: UUID) -> LabelmapOut:
    labelmap = await registry.get_labelmap(ctx.pool, key.project_id, labelmap_id)
    if labelmap is None:
        raise not_found("path.labelmap_id", "labelmap")
    return LabelmapOut.model_validate(labelmap)


@router.post("/datasets", status_code=201, responses=WRITE_ERRORS)
async def create_dataset(ctx: Ctx, key: WriteKey, body: DatasetCreate) -> DatasetOut:
    dataset = await registry.create_dataset(ctx.pool, key.project_id, body.name, body.description)
    return DatasetOut.model_validate(dataset)


@router.get("/datasets")
async def list_datasets(ctx: Ctx, key: ReadKey, page: Page, name: Name | None = None) -> PageOf[DatasetOut]:
    datasets, total = await registry.list_datasets(
        ctx.pool, key.project_id, name=name, limit=page.limit, offset=page.offset
    )
    return PageOf[DatasetOut](items=[DatasetOut.model_validate(d) for d in datasets], total=total)


@router.get("/datasets/{dataset_id}")
async def get_dataset(ctx: Ctx, key: ReadKey, dataset_id: UUID) -> DatasetOut:
    dataset = await registry.get_dataset(ctx.pool, key.project_id, dataset_id)
    if dataset is None:
        raise not_found("path.dataset_id", "dataset")
    return DatasetOut.model_validate(dataset)


@router.post("/datasets/{dataset_id}/versions", status_code=201, responses=WRITE_ERRORS)
async def create_dataset_version(
    ctx: Ctx, key: WriteKey, dataset_id: UUID, body: DatasetVersionCreate
) -> DatasetVersionOut:
    if await registry.get_dataset(ctx.pool, key.project_id, dataset_id) is None:
        raise not_found("path.dataset_id", "dataset")
    if body.labelmap_id and await registry.get_labelmap(ctx.pool, key.project_id, body.labelmap_id) is None:
        raise not_found("body.labelmap_id", "labelmap")
    version = await registry.create_dataset_version(
        ctx.pool,
        key.project_id,
        dataset_id,
        body.version,
        body.detection_type,
        labelmap_id=body.labelmap_id,
        description=body.description,
    )
    return DatasetVersionOut.model_validate(version)


@router.get("/datasets/{dataset_id}/versions")
async def list_dataset_versions(
    ctx: Ctx, key: ReadKey, page: Page, dataset_id: UUID
) -> PageOf[DatasetVersionOut]:
    if await registry.get_dataset(ctx.pool, key.project_id, dataset_id) is None:
        raise not_found("path.dataset_id", "dataset")
    versions, total = await registry.list_dataset_versions(
        ctx.pool, key.project_id, dataset_id, limit=page.limit, offset=page.offset
    )
    return PageOf[DatasetVersionOut](
        items=[DatasetVersionOut.model_validate(v) for v in versions], total=total
    )


@router.get("/dataset-versions/{dataset_version_id}")
async def get_dataset_version(ctx: Ctx, key: ReadKey, dataset_version_id: UUID) -> DatasetVersionOut:
    version = await registry.get_dataset_version(ctx.pool, key.project_id, dataset_version_id)
    if version is None:
        raise not_found("path.dataset_version_id", "dataset version")
    return DatasetVersionOut.model_validate(version)


@router.post("/dataset-versions/{dataset_version_id}/assets", status_code=201, responses=WRITE_ERRORS)
async def add_asset(ctx: Ctx, key: WriteKey, dataset_version_id: UUID, body: AssetCreate) -> AssetOut:
    version = await registry.get_dataset_version(ctx.pool, key.project_id, dataset_version_id)
    if version is None:
        raise not_found("path.dataset_version_id", "dataset version")
    data = await read_uploaded(ctx, key.project_id, body.object_key, "body.object_key")
    try:
        image = await asyncio.to_thread(
            decode_image, data, ctx.settings.max_image_bytes, ctx.settings.max_image_pixels
        )
    except InvalidImage as exc:
        raise ApiError(422, "body.object_key", str(exc)) from None
    if body.annotation is not None:
        labelmap = version.labelmap_id and await registry.get_labelmap(
            ctx.pool, key.project_id, version.labelmap_id
        )
        problem = annotation_problem(
            body.annotation,
            version.detection_type,
            image.width,
            image.height,
            labelmap.labels if labelmap else None,
        )
        if problem is not None:
            raise ApiError(422, f"body.annotation.{problem[0]}", problem[1])
    async with transaction(ctx.pool) as conn:
        asset = await registry.add_asset(
            conn,
            key.project_id,
            dataset_version_id,
            object_key=body.object_key,
            sha256=parse_key(body.object_key).sha256,
            width=image.width,
            height=image.height,
        )
        if body.annotation is not None:
            await registry.add_annotation(
                conn, key.project_id, asset.id, body.annotation.model_dump(mode="json"), created_by=key.name
            )
        annotations = await registry.list_annotations(conn, key.project_id, asset.id)
    return AssetOut.model_validate(
        asset.model_dump() | {"annotations": [AnnotationOut.model_validate(a) for a in annotations]}
    )


@router.get("/dataset-versions/{dataset_version_id}/assets")
async def list_assets(ctx: Ctx, key: ReadKey, page: Page, dataset_version_id: UUID) -> PageOf[AssetOut]:
    if await registry.get_dataset_version(ctx.pool, key.project_id, dataset_version_id) is None:
        raise not_found("path.dataset_version_id", "dataset version")
    assets = await registry.list_assets(
        ctx.pool, key.project_id, dataset_version_id, limit=page.limit, offset=page.offset
    )
    total = await registry.count_assets(ctx.pool, key.project_id, dataset_version_id)
    annotations = await registry.annotations_of(ctx.pool, key.project_id, [a.id for a in assets])
    items = [
        AssetOut.model_validate(
            a.model_dump() | {"annotations": [AnnotationOut.model_validate(x) for x in annotations[a.id]]}
        )
        for a in assets
    ]
    return PageOf[AssetOut](items=items, total=total)


@router.post("/models", status_code=201, responses=WRITE_ERRORS)
async def create_model(ctx: Ctx, key: WriteKey, body: ModelCreate) -> ModelOut:
    return ModelOut.model_validate(
        await registry.create_model(ctx.pool, key.project_id, body.name, body.description)
    )


@router.get("/models")
async def list_models(ctx: Ctx, key: ReadKey, page: Page, name: Name | None = None) -> PageOf[ModelOut]:
    models, total = await registry.list_models(
        ctx.pool, key.project_id, name=name, limit=page.limit, offset=page.offset
    )
    return PageOf[ModelOut](items=[ModelOut.model_validate(m) for m in models], total=total)


@router.get("/models/{model_id}")
async def get_model(ctx: Ctx, key: ReadKey, model_id: UUID) -> ModelOut:
    model = await registry.get_model(ctx.pool, key.project_id, model_id)
    if model is None:
        raise not_found("path.model_id", "model")
    return ModelOut.model_validate(model)


@router.post("/models/{model_id}/versions", status_code=201, responses=WRITE_ERRORS)
async def create_model_version(
    ctx: Ctx, key: WriteKey, model_id: UUID, body: ModelVersionCreate
) -> ModelVersionOut:
    project_id = key.project_id
    if await registry.get_model(ctx.pool, project_id, model_id) is None:
        raise not_found("path.model_id", "model")
    for field in ("training_entrypoint", "training_image"):  # code a training runs
        if getattr(body, field) is not None:
            require_scope(key, Scope.ADMIN, f"body.{field}")
    if body.labelmap_id and await registry.get_labelmap(ctx.pool, project_id, body.labelmap_id) is None:
        raise not_found("body.labelmap_id", "labelmap")
    if body.source_experiment_id and not await experiments.get_experiment(
        ctx.pool, project_id, body.source_experiment_id
    ):
        raise not_found("body.source_experiment_id", "experiment")
    for alias, dataset_version_id in body.dataset_versions.items():
        if await registry.get_dataset_version(ctx.pool, project_id, dataset_version_id) is None:
            raise not_found(f"body.dataset_versions.{alias}", "dataset version")
    files = []
    for name, object_key in body.files.items():
        sha256, size = await uploaded(ctx, project_id, object_key, f"body.files.{name}")
        files.append(ModelFile(name=name, object_key=object_key, sha256=sha256, size_bytes=size))
    new = NewModelVersion.model_validate(
        body.model_dump(exclude={"files"}) | {"files": files, "created_by_key_id": key.id}
    )
    await check_registered(ctx.pool, ctx.store, project_id, new)
    version = await registry.create_model_version(ctx.pool, project_id, model_id, new)
    return ModelVersionOut.model_validate(version)


@router.get("/models/{model_id}/versions")
async def list_model_versions(ctx: Ctx, key: ReadKey, page: Page, model_id: UUID) -> PageOf[ModelVersionOut]:
    if await registry.get_model(ctx.pool, key.project_id, model_id) is None:
        raise not_found("path.model_id", "model")
    versions = await registry.list_model_versions(ctx.pool, key.project_id, model_id)
    return PageOf[ModelVersionOut](
        items=[ModelVersionOut.model_validate(v) for v in versions[page.offset : page.offset + page.limit]],
        total=len(versions),
    )


@router.get("/model-versions/{model_version_id}")
async def get_model_version(ctx: Ctx, key: ReadKey, model_version_id: UUID) -> ModelVersionOut:
    version = await registry.get_model_version(ctx.pool, key.project_id, model_version_id)
    if version is None:
        raise not_found("path.model_version_id", "model version")
    return ModelVersionOut.model_validate(version)


# Listing labelmaps, downloading a version's files, deleting what nothing uses any more.


@router.get("/labelmaps")
async def list_labelmaps(ctx: Ctx, key: ReadKey, page: Page, name: Name | None = None) -> PageOf[LabelmapOut]:
    labelmaps, total = await registry.list_labelmaps(
        ctx.pool, key.project_id, name=name, limit=page.limit, offset=page.offset
    )
    return PageOf[LabelmapOut](items=[LabelmapOut.model_validate(m) for m in labelmaps], total=total)


def _presigned(ctx: Context, files: list[ModelFile]) -> list[ModelFileDownload]:
    ttl = timedelta(seconds=ctx.settings.api_download_url_ttl_s)
    expires_at = datetime.now(UTC) + ttl
    return [
        ModelFileDownload(
            name=f.name,
            sha256=f.sha256,
            size_bytes=f.size_bytes,
            url=ctx.store.presigned_get_url(f.object_key, ttl),
            expires_at=expires_at,
        )
        for f in files
    ]


@router.get("/model-versions/{model_version_id}/files")
async def download_model_version_files(
    ctx: Ctx, key: ReadKey, model_version_id: UUID
) -> list[ModelFileDownload]:
    """Each file of the version with a presigned URL to GET it from the object store."""
    version = await registry.get_model_version(ctx.pool, key.project_id, model_version_id)
    if version is None:
        raise not_found("path.model_version_id", "model version")
    return await asyncio.to_thread(_presigned, ctx, version.files)


@router.delete("/model-versions/{model_version_id}", status_code=204, responses=WRITE_ERRORS)
async def delete_model_version(ctx: Ctx, key: WriteKey, model_version_id: UUID) -> None:
    """409 naming what still uses it: deployments, recorded predictions, experiments, active jobs."""
    async with transaction(ctx.pool) as conn:
        try:
            await deletions.delete_model_version(conn, key.project_id, model_version_id)
        except NotFound:
            raise not_found("path.model_version_id", "model version") from None


@router.delete(
    "/dataset-versions/{dataset_version_id}/assets/{asset_id}", status_code=204, responses=WRITE_ERRORS
)
async def delete_asset(ctx: Ctx, key: WriteKey, dataset_version_id: UUID, asset_id: UUID) -> None:
    """409 naming what still uses it: the submitted predictions it came from, active jobs on its version."""
    async with transaction(ctx.pool) as conn:
        try:
            await deletions.delete_asset(conn, key.project_id, dataset_version_id, asset_id)
        except NotFound:
            raise not_found("path.asset_id", "asset") from None
