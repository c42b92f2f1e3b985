"""Predicted assets: what a deployment predicted, its outlier score, and its review and submission.

Review states are checked here (review_state) before a write and again by the database's trigger,
so a bug or a hand-written UPDATE cannot move an asset backwards either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from schemas.events import PredictionLogged
from schemas.predictions import Prediction
from schemas.vocabulary import PredictionOrder, ReviewStatus
from services.common.domain.predictions import PredictedAsset, PredictionFilter, Submission
from services.common.domain.review_state import check_transition

from . import objects, outbox
from .base import Db, NotFound, transaction
from .registry import add_annotation, add_asset

# Fixed SQL per order: the ORDER BY is never built from the caller's text.
_ORDER_BY = {
    PredictionOrder.NEWEST: "created_at DESC, prediction_id",
    PredictionOrder.OLDEST: "created_at, prediction_id",
    PredictionOrder.MOST_OUTLYING: "outlier_score DESC NULLS LAST, created_at DESC, prediction_id",
    PredictionOrder.LEAST_OUTLYING: "outlier_score ASC NULLS LAST, created_at DESC, prediction_id",
}


def _predicted_asset(row: asyncpg.Record) -> PredictedAsset:
    return PredictedAsset.model_validate(dict(row))


_INSERT_COLUMNS = (
    "prediction_id, project_id, deployment_id, image_object_key, image_sha256, width, height, source, "
    "tags, metadata, champion_prediction, champion_latency_ms, champion_model_version_id, "
    "shadow_prediction, shadow_latency_ms, shadow_model_version_id, shadow_error, features, predicted_at"
)
# The images are recorded as their projects' objects (served images are stored by serving for the
# deployment's project; ingest checked those named by key) in the same statement.
_RECORD_IMAGES = f"recorded AS ({objects.recording('$2', '$4')})"
# One statement text for any number of rows (so Postgres prepares it once): a column per array
# parameter, JSON as text (and tags as a JSON list: unnest would flatten an array of arrays).
_INSERT_PREDICTIONS = f"""
    INSERT INTO predicted_assets ({_INSERT_COLUMNS})
    SELECT r.prediction_id, r.project_id, r.deployment_id, r.image_object_key, r.image_sha256, r.width,
        r.height, r.source, ARRAY(SELECT jsonb_array_elements_text(r.tags::jsonb)), r.metadata::jsonb,
        r.champion_prediction::jsonb, r.champion_latency_ms, r.champion_model_version_id,
        r.shadow_prediction::jsonb, r.shadow_latency_ms, r.shadow_model_version_id, r.shadow_error,
        r.features::jsonb, r.predicted_at
    FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int[], $7::int[],
        $8::text[], $9::text[], $10::text[], $11::text[], $12::float8[], $13::uuid[], $14::text[],
        $15::float8[], $16::uuid[], $17::text[], $18::text[], $19::timestamptz[])
        WITH ORDINALITY AS r({_INSERT_COLUMNS}, position)
    ORDER BY r.position  -- of two rows for one image, the first is kept
    ON CONFLICT DO NOTHING RETURNING prediction_id"""
_INSERT_MANY = f"WITH {_RECORD_IMAGES} {_INSERT_PREDICTIONS}"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _insert_columns(rows: Sequence[tuple[UUID, PredictionLogged]]) -> list[list[Any]]:
    """The rows as the 19 column arrays `_INSERT_MANY` takes ($1 to $19)."""
    columns: list[list[Any]] = [[] for _ in range(19)]
    for project_id, event in rows:
        shadow = event.shadow
        values = (
            event.prediction_id,
            project_id,
            event.deployment_id,
            event.image.object_key,
            event.image.sha256,
            event.image.width,
            event.image.height,
            event.source.value,
            _json(list(dict.fromkeys(event.tags))),
            _json(event.metadata),
            event.champion.prediction.model_dump_json(),
            event.champion.latency_ms,
            event.champion.model_version_id,
            shadow.prediction.model_dump_json() if shadow else None,
            shadow.latency_ms if shadow else None,
            shadow.model_version_id if shadow else None,
            event.shadow_error,
            _json(event.features),
            event.predicted_at,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


async def insert_prediction(db: Db, project_id: UUID, event: PredictionLogged) -> bool:
    """Record a logged prediction; False when its prediction id, or its image in this deployment, is
    already recorded (a redelivered event or the same image sent twice), which changes nothing."""
    return bool(await insert_predictions(db, [(project_id, event)]))


async def insert_predictions(db: Db, rows: Sequence[tuple[UUID, PredictionLogged]]) -> set[UUID]:
    """Record many logged predictions (project id, event) in one statement; the prediction ids actually
    inserted: the others were already recorded, by prediction id or by image in their deployment."""
    return await _insert(db, _INSERT_MANY, *_insert_columns(rows)) if rows else set()


# The predicted assets and the events of those actually inserted, in one statement (atomic without an
# explicit transaction, and one round trip): $1-$19 the rows, $20-$23 the events, $24 their topic, $25
# the seconds before the relay may send them.
_INSERT_MANY_WITH_EVENTS = f"""
    WITH {_RECORD_IMAGES},
    inserted AS ({_INSERT_PREDICTIONS}),
    kept AS (
        {outbox.INSERT}
        SELECT o.event_id, $24, o.key, o.value, now() + make_interval(secs => $25)
        FROM unnest($20::uuid[], $21::uuid[], $22::bytea[], $23::bytea[])
            AS o(event_id, prediction_id, key, value)
        WHERE o.prediction_id IN (SELECT prediction_id FROM inserted)
    )
    SELECT prediction_id FROM inserted"""


async def insert_predictions_with_events(
    db: Db, rows: Sequence[tuple[UUID, PredictionLogged]], topic: str, relay_after_s: float
) -> set[UUID]:
    """`insert_predictions`, with the events of the rows inserted kept in the outbox for `topic`, relayed
    after `relay_after_s` unless acknowledged (and deleted) first."""
    events = [event for _, event in rows]
    return await _insert(
        db,
        _INSERT_MANY_WITH_EVENTS,
        *_insert_columns(rows),
        [e.event_id for e in events],
        [e.prediction_id for e in events],
        [e.key for e in events],
        [e.to_bytes() for e in events],
        topic,
        relay_after_s,
    )


async def _insert(db: Db, statement: str, *args: Any) -> set[UUID]:
    """The prediction ids `statement` inserted."""
    try:
        records = await db.fetch(statement, *args)
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(
            "a deployment or a model version of these predictions is not in the prediction's project"
        ) from exc
    return {record["prediction_id"] for record in records}


async def predictions_of_images(db: Db, deployment_id: UUID, sha256s: Sequence[str]) -> dict[str, UUID]:
    """The prediction recorded for each of these images in the deployment, by image sha256."""
    rows = await db.fetch(
        """SELECT image_sha256, prediction_id FROM predicted_assets
           WHERE deployment_id = $1 AND image_sha256 = ANY($2::text[])""",
        deployment_id,
        list(sha256s),
    )
    return {row["image_sha256"]: row["prediction_id"] for row in rows}


async def get_prediction(db: Db, project_id: UUID, prediction_id: UUID) -> PredictedAsset | None:
    row = await db.fetchrow(
        "SELECT * FROM predicted_assets WHERE project_id = $1 AND prediction_id = $2",
        project_id,
        prediction_id,
    )
    return _predicted_asset(row) if row else None


async def _locked(conn: asyncpg.Connection, project_id: UUID, prediction_id: UUID) -> PredictedAsset:
    row = await conn.fetchrow(
        "SELECT * FROM predicted_assets WHERE project_id = $1 AND prediction_id = $2 FOR UPDATE",
        project_id,
        prediction_id,
    )
    if row is None:
        raise NotFound(f"prediction {prediction_id} is not in this project")
    return _predicted_asset(row)


async def set_outlier_score(db: Db, project_id: UUID, prediction_id: UUID, score: float) -> bool:
    """Store the scoring stream's outlier score, in any review state (it may arrive late)."""
    status = await db.execute(
        "UPDATE predicted_assets SET outlier_score = $3 WHERE project_id = $1 AND prediction_id = $2",
        project_id,
        prediction_id,
        score,
    )
    return status == "UPDATE 1"


async def review(
    db: Db, project_id: UUID, prediction_id: UUID, corrected: Prediction, *, reviewed_by: str
) -> PredictedAsset:
    """Record a person's corrected prediction: TO_REVIEW -> REVIEWED, or a new review of a REVIEWED one."""
    async with transaction(db) as conn:
        current = await _locked(conn, project_id, prediction_id)
        check_transition(current.status, ReviewStatus.REVIEWED)
        # The review becomes ground truth in a dataset version: it must fit the deployment and the image.
        detection_type = await conn.fetchval(
            "SELECT detection_type FROM deployments WHERE project_id = $1 AND id = $2",
            project_id,
            current.deployment_id,
        )
        if corrected.type != detection_type:
            raise ValueError(f"review.type is {corrected.type} but the deployment detects {detection_type}")
        try:
            corrected.check_inside(current.width, current.height)
        except ValueError as exc:
            raise ValueError(f"review.{exc}") from None
        row = await conn.fetchrow(
            """UPDATE predicted_assets
               SET status = 'REVIEWED', review = $3, reviewed_by = $4, reviewed_at = now()
               WHERE project_id = $1 AND prediction_id = $2 RETURNING *""",
            project_id,
            prediction_id,
            corrected.model_dump(mode="json"),
            reviewed_by,
        )
    return _predicted_asset(row)


async def submit_reviewed(
    db: Db, project_id: UUID, prediction_id: UUID, dataset_version_id: UUID, *, submitted_by: str
) -> Submission:
    """Add a REVIEWED prediction's image and review to one of its deployment's feedback-loop dataset
    versions and mark it SUBMITTED, all at once. Repeating the same submission changes nothing."""
    async with transaction(db) as conn:
        current = await _locked(conn, project_id, prediction_id)
        if (
            current.status is ReviewStatus.SUBMITTED
            and current.submitted_dataset_version_id == dataset_version_id
            and current.submitted_asset_id is not None
        ):
            return Submission(current, newly_submitted=False)
        check_transition(current.status, ReviewStatus.SUBMITTED)
        in_loop = await conn.fetchval(
            """SELECT true FROM deployment_feedback_dataset_versions
               WHERE project_id = $1 AND deployment_id = $2 AND dataset_version_id = $3""",
            project_id,
            current.deployment_id,
            dataset_version_id,
        )
        if not in_loop:
            raise NotFound(
                f"dataset version {dataset_version_id} is not in the feedback loop of deployment "
                f"{current.deployment_id}"
            )
        assert current.review is not None  # REVIEWED rows hold a review (a CHECK constraint)
        asset = await add_asset(
            conn,
            project_id,
            dataset_version_id,
            object_key=current.image_object_key,
            sha256=current.image_sha256,
            width=current.width,
            height=current.height,
        )
        await add_annotation(
            conn, project_id, asset.id, current.review, created_by=submitted_by, prediction_id=prediction_id
        )
        row = await conn.fetchrow(
            """UPDATE predicted_assets
               SET status = 'SUBMITTED', submitted_dataset_version_id = $3, submitted_asset_id = $4,
                   submitted_at = now()
               WHERE project_id = $1 AND prediction_id = $2 RETURNING *""",
            project_id,
            prediction_id,
            dataset_version_id,
            asset.id,
        )
    return Submission(_predicted_asset(row), newly_submitted=True)


def _where(project_id: UUID, deployment_id: UUID, where: PredictionFilter) -> tuple[list[str], list[Any]]:
    """SQL conditions with their $n arguments: only fixed fragments, the values travel as arguments."""
    conditions = ["project_id = $1", "deployment_id = $2"]
    args: list[Any] = [project_id, deployment_id]

    def condition(sql: str, value: Any) -> None:
        args.append(value)
        conditions.append(sql.format(f"${len(args)}"))

    if where.status is not None:
        condition("status = {}", where.status.value)
    if where.created_from is not None:
        condition("created_at >= {}", where.created_from)
    if where.created_until is not None:
        condition("created_at < {}", where.created_until)
    if where.min_outlier_score is not None:
        condition("outlier_score >= {}", where.min_outlier_score)
    if where.max_outlier_score is not None:
        condition("outlier_score <= {}", where.max_outlier_score)
    if where.tags:
        condition("tags @> {}", where.tags)
    return conditions, args


async def list_predictions(
    db: Db,
    project_id: UUID,
    deployment_id: UUID,
    where: PredictionFilter | None = None,
    *,
    order: PredictionOrder = PredictionOrder.NEWEST,
    limit: int = 50,
    offset: int = 0,
) -> list[PredictedAsset]:
    """One page of a deployment's predicted assets (the review queue when filtered by status)."""
    conditions, args = _where(project_id, deployment_id, where or PredictionFilter())
    args += [limit, offset]
    rows = await db.fetch(
        f"""SELECT * FROM predicted_assets WHERE {" AND ".join(conditions)}
            ORDER BY {_ORDER_BY[PredictionOrder(order)]} LIMIT ${len(args) - 1} OFFSET ${len(args)}""",
        *args,
    )
    return [_predicted_asset(r) for r in rows]


async def count_predictions(
    db: Db, project_id: UUID, deployment_id: UUID, where: PredictionFilter | None = None
) -> int:
    conditions, args = _where(project_id, deployment_id, where or PredictionFilter())
    return await db.fetchval(f"SELECT count(*) FROM predicted_assets WHERE {' AND '.join(conditions)}", *args)


async def count_by_deployment_and_status(db: Db) -> dict[tuple[UUID, ReviewStatus], int]:
    """Every deployment's predicted assets by review status (what /metrics shows as the review backlog);
    the queue indexes lead with (deployment_id, status), so this reads an index."""
    rows = await db.fetch(
        "SELECT deployment_id, status, count(*) AS n FROM predicted_assets GROUP BY deployment_id, status"
    )
    return {(row["deployment_id"], ReviewStatus(row["status"])): row["n"] for row in rows}


async def reviewed_prediction_ids(db: Db, project_id: UUID, deployment_id: UUID, *, limit: int) -> list[UUID]:
    """The deployment's REVIEWED predictions, oldest first: what "submit all reviewed" submits."""
    rows = await db.fetch(
        """SELECT prediction_id FROM predicted_assets
           WHERE project_id = $1 AND deployment_id = $2 AND status = 'REVIEWED'
           ORDER BY created_at, prediction_id LIMIT $3""",
        project_id,
        deployment_id,
        limit,
    )
    return [r["prediction_id"] for r in rows]
