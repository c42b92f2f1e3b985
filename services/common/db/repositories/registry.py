"""The registry: labelmaps, datasets and their versions, assets and annotations, models and versions."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from schemas.predictions import DetectionType
from services.common.domain.registry import (
    Annotation,
    Asset,
    Dataset,
    DatasetVersion,
    Labelmap,
    Model,
    ModelVersion,
    NewModelVersion,
)

from . import objects
from .base import Db, NotFound, transaction

_Named = TypeVar("_Named", bound=BaseModel)


async def create_labelmap(db: Db, project_id: UUID, name: str, labels: list[str]) -> Labelmap:
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be distinct")
    row = await db.fetchrow(
        "INSERT INTO labelmaps (project_id, name, labels) VALUES ($1, $2, $3) RETURNING *",
        project_id,
        name,
        labels,
    )
    return Labelmap.model_validate(dict(row))


async def create_dataset(db: Db, project_id: UUID, name: str, description: str = "") -> Dataset:
    row = await db.fetchrow(
        "INSERT INTO datasets (project_id, name, description) VALUES ($1, $2, $3) RETURNING *",
        project_id,
        name,
        description,
    )
    return Dataset.model_validate(dict(row))


async def create_dataset_version(
    db: Db,
    project_id: UUID,
    dataset_id: UUID,
    version: str,
    detection_type: DetectionType,
    *,
    labelmap_id: UUID | None = None,
    description: str = "",
) -> DatasetVersion:
    try:
        row = await db.fetchrow(
            """INSERT INTO dataset_versions
                   (project_id, dataset_id, version, detection_type, labelmap_id, description)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
            project_id,
            dataset_id,
            version,
            DetectionType(detection_type).value,
            labelmap_id,
            description,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"dataset {dataset_id} or labelmap {labelmap_id} is not in this project") from exc
    return DatasetVersion.model_validate(dict(row))


async def get_dataset_version(db: Db, project_id: UUID, dataset_version_id: UUID) -> DatasetVersion | None:
    row = await db.fetchrow(
        "SELECT * FROM dataset_versions WHERE project_id = $1 AND id = $2", project_id, dataset_version_id
    )
    return DatasetVersion.model_validate(dict(row)) if row else None


async def add_asset(
    db: Db,
    project_id: UUID,
    dataset_version_id: UUID,
    *,
    object_key: str,
    sha256: str,
    width: int,
    height: int,
) -> Asset:
    """The version's asset for this image: added, or the one already there (an image appears once)."""
    try:
        async with transaction(db) as conn:
            await objects.record(conn, project_id, [object_key])
            row = await conn.fetchrow(
                """INSERT INTO assets (project_id, dataset_version_id, object_key, sha256, width, height)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (dataset_version_id, sha256) DO UPDATE SET sha256 = EXCLUDED.sha256
                   RETURNING *""",
                project_id,
                dataset_version_id,
                object_key,
                sha256,
                width,
                height,
            )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"dataset version {dataset_version_id} is not in this project") from exc
    return Asset.model_validate(dict(row))


async def add_annotation(
    db: Db,
    project_id: UUID,
    asset_id: UUID,
    shapes: dict[str, Any],
    *,
    created_by: str = "",
    prediction_id: UUID | None = None,
) -> Annotation:
    """Add ground truth to an asset; from a prediction, once (a second call returns the first one)."""
    try:
        row = await db.fetchrow(
            """INSERT INTO annotations (project_id, asset_id, shapes, created_by, prediction_id)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (asset_id, prediction_id) DO UPDATE SET asset_id = EXCLUDED.asset_id
               RETURNING *""",
            project_id,
            asset_id,
            shapes,
            created_by,
            prediction_id,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"asset {asset_id} is not in this project") from exc
    return Annotation.model_validate(dict(row))


async def list_assets(
    db: Db, project_id: UUID, dataset_version_id: UUID, *, limit: int = 100, offset: int = 0
) -> list[Asset]:
    rows = await db.fetch(
        """SELECT * FROM assets WHERE project_id = $1 AND dataset_version_id = $2
           ORDER BY created_at, id LIMIT $3 OFFSET $4""",
        project_id,
        dataset_version_id,
        limit,
        offset,
    )
    return [Asset.model_validate(dict(r)) for r in rows]


async def list_annotations(db: Db, project_id: UUID, asset_id: UUID) -> list[Annotation]:
    rows = await db.fetch(
        "SELECT * FROM annotations WHERE project_id = $1 AND asset_id = $2 ORDER BY created_at, id",
        project_id,
        asset_id,
    )
    return [Annotation.model_validate(dict(r)) for r in rows]


async def create_model(db: Db, project_id: UUID, name: str, description: str = "") -> Model:
    row = await db.fetchrow(
        "INSERT INTO models (project_id, name, description) VALUES ($1, $2, $3) RETURNING *",
        project_id,
        name,
        description,
    )
    return Model.model_validate(dict(row))


async def create_model_version(
    db: Db, project_id: UUID, model_id: UUID, new: NewModelVersion
) -> ModelVersion:
    """The version with its files and dataset versions, all written or none."""
    async with transaction(db) as conn:
        try:
            row = await conn.fetchrow(
                """INSERT INTO model_versions (project_id, model_id, version, description, detection_type,
                       labelmap_id, training_parameters, training_entrypoint, training_image,
                       source_experiment_id, io, created_by_key_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id""",
                project_id,
                model_id,
                new.version,
                new.description,
                new.detection_type.value,
                new.labelmap_id,
                new.training_parameters,
                new.training_entrypoint,
                new.training_image,
                new.source_experiment_id,
                new.io.model_dump(mode="json") if new.io else None,
                new.created_by_key_id,
            )
            await conn.executemany(
                """INSERT INTO model_files
                       (project_id, model_version_id, name, object_key, sha256, size_bytes)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                [(project_id, row["id"], f.name, f.object_key, f.sha256, f.size_bytes) for f in new.files],
            )
            await objects.record(conn, project_id, [f.object_key for f in new.files])
            await conn.executemany(
                """INSERT INTO model_version_dataset_versions
                       (project_id, model_version_id, alias, dataset_version_id)
                   VALUES ($1, $2, $3, $4)""",
                [(project_id, row["id"], alias, dv) for alias, dv in new.dataset_versions.items()],
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(
                f"a model, labelmap, experiment or dataset version is not in this project: {exc}"
            ) from exc
        version = await get_model_version(conn, project_id, row["id"])
    assert version is not None  # written by this transaction
    return version


async def create_model_version_named(
    db: Db, project_id: UUID, model_id: UUID, new: NewModelVersion, names: tuple[str, ...]
) -> ModelVersion | None:
    """The version under the first of `names` the model has no version of; None when it has all."""
    for name in names:
        try:  # each insert a savepoint: a taken name leaves the caller's transaction usable
            return await create_model_version(
                db, project_id, model_id, new.model_copy(update={"version": name})
            )
        except asyncpg.UniqueViolationError:
            continue
    return None


_MODEL_VERSIONS = """
    SELECT v.*,
        COALESCE((SELECT jsonb_agg(jsonb_build_object('name', f.name, 'object_key', f.object_key,
                          'sha256', f.sha256, 'size_bytes', f.size_bytes) ORDER BY f.name)
                  FROM model_files f WHERE f.model_version_id = v.id), '[]') AS files,
        COALESCE((SELECT jsonb_object_agg(d.alias, d.dataset_version_id)
                  FROM model_version_dataset_versions d WHERE d.model_version_id = v.id), '{}')
            AS dataset_versions
    FROM model_versions v WHERE v.project_id = $1"""


async def get_model_version(db: Db, project_id: UUID, model_version_id: UUID) -> ModelVersion | None:
    row = await db.fetchrow(f"{_MODEL_VERSIONS} AND v.id = $2", project_id, model_version_id)
    return ModelVersion.model_validate(dict(row)) if row else None


async def exported_from(db: Db, project_id: UUID, experiment_id: UUID) -> ModelVersion | None:
    """The model version an experiment was exported as (the first, when exported more than once)."""
    row = await db.fetchrow(
        f"{_MODEL_VERSIONS} AND v.source_experiment_id = $2 ORDER BY v.created_at, v.id LIMIT 1",
        project_id,
        experiment_id,
    )
    return ModelVersion.model_validate(dict(row)) if row else None


async def list_model_versions(db: Db, project_id: UUID, model_id: UUID) -> list[ModelVersion]:
    rows = await db.fetch(
        f"{_MODEL_VERSIONS} AND v.model_id = $2 ORDER BY v.created_at, v.id", project_id, model_id
    )
    return [ModelVersion.model_validate(dict(r)) for r in rows]


# Lookups and pages the control plane answers with: each list comes with how many rows match in all.


async def model_version_labels(
    db: Db, project_id: UUID, model_version_ids: Collection[UUID]
) -> dict[UUID, list[str] | None]:
    """The labels of each of these model versions that is in the project (None: it has no labelmap);
    another project's or an unknown one is left out."""
    rows = await db.fetch(
        """SELECT v.id, l.labels FROM model_versions v LEFT JOIN labelmaps l ON l.id = v.labelmap_id
           WHERE v.project_id = $1 AND v.id = ANY($2::uuid[])""",
        project_id,
        list(model_version_ids),
    )
    return {row["id"]: row["labels"] for row in rows}


async def get_labelmap(db: Db, project_id: UUID, labelmap_id: UUID) -> Labelmap | None:
    row = await db.fetchrow(
        "SELECT * FROM labelmaps WHERE project_id = $1 AND id = $2", project_id, labelmap_id
    )
    return Labelmap.model_validate(dict(row)) if row else None


async def find_labelmap(db: Db, project_id: UUID, name: str) -> Labelmap | None:
    """The project's labelmap of that name."""
    row = await db.fetchrow("SELECT * FROM labelmaps WHERE project_id = $1 AND name = $2", project_id, name)
    return Labelmap.model_validate(dict(row)) if row else None


async def get_dataset(db: Db, project_id: UUID, dataset_id: UUID) -> Dataset | None:
    row = await db.fetchrow(
        "SELECT * FROM datasets WHERE project_id = $1 AND id = $2", project_id, dataset_id
    )
    return Dataset.model_validate(dict(row)) if row else None


async def list_datasets(
    db: Db, project_id: UUID, *, name: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Dataset], int]:
    return await _list_named(db, "datasets", Dataset, project_id, name, limit, offset)


async def list_dataset_versions(
    db: Db, project_id: UUID, dataset_id: UUID, *, limit: int = 50, offset: int = 0
) -> tuple[list[DatasetVersion], int]:
    rows = await db.fetch(
        """SELECT * FROM dataset_versions WHERE project_id = $1 AND dataset_id = $2
           ORDER BY created_at, id LIMIT $3 OFFSET $4""",
        project_id,
        dataset_id,
        limit,
        offset,
    )
    total = await db.fetchval(
        "SELECT count(*) FROM dataset_versions WHERE project_id = $1 AND dataset_id = $2",
        project_id,
        dataset_id,
    )
    return [DatasetVersion.model_validate(dict(r)) for r in rows], total


async def count_assets(db: Db, project_id: UUID, dataset_version_id: UUID) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM assets WHERE project_id = $1 AND dataset_version_id = $2",
        project_id,
        dataset_version_id,
    )


async def annotations_of(db: Db, project_id: UUID, asset_ids: list[UUID]) -> dict[UUID, list[Annotation]]:
    """The annotations of many assets at once, by asset."""
    rows = await db.fetch(
        """SELECT * FROM annotations WHERE project_id = $1 AND asset_id = ANY($2::uuid[])
           ORDER BY created_at, id""",
        project_id,
        asset_ids,
    )
    found: dict[UUID, list[Annotation]] = {asset_id: [] for asset_id in asset_ids}
    for row in rows:
        found[row["asset_id"]].append(Annotation.model_validate(dict(row)))
    return found


async def get_model(db: Db, project_id: UUID, model_id: UUID) -> Model | None:
    row = await db.fetchrow("SELECT * FROM models WHERE project_id = $1 AND id = $2", project_id, model_id)
    return Model.model_validate(dict(row)) if row else None


async def list_models(
    db: Db, project_id: UUID, *, name: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Model], int]:
    return await _list_named(db, "models", Model, project_id, name, limit, offset)


async def list_labelmaps(
    db: Db, project_id: UUID, *, name: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Labelmap], int]:
    return await _list_named(db, "labelmaps", Labelmap, project_id, name, limit, offset)


async def _list_named(
    db: Db, table: str, record: type[_Named], project_id: UUID, name: str | None, limit: int, offset: int
) -> tuple[list[_Named], int]:
    """One page of a project's rows of `table` (a constant of this module), optionally of one name."""
    where = "WHERE project_id = $1 AND ($2::text IS NULL OR name = $2)"
    page = f"SELECT * FROM {table} {where} ORDER BY created_at, id LIMIT $3 OFFSET $4"
    rows = await db.fetch(page, project_id, name, limit, offset)
    total = await db.fetchval(f"SELECT count(*) FROM {table} {where}", project_id, name)
    return [record.model_validate(dict(r)) for r in rows], total
