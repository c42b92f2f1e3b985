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

from schemas.api.deployments import ReviewQueueSettings
from schemas.events import PredictionLogged
from schemas.predictions import Prediction
from schemas.vocabulary import PredictionOrder, ReviewStatus
from services.common.domain.acquisition import disagreement, uncertainty
from services.common.domain.outbox import publishable_value
from services.common.domain.predictions import PredictedAsset, PredictionFilter, Submission
from services.common.domain.review_state import check_transition

from . import objects, outbox
from .base import Db, NotFound, transaction

# Fixed SQL per order: the ORDER BY is never built from the caller's text.
_ORDER_BY = {
    PredictionOrder.NEWEST: "created_at DESC, prediction_id",
    PredictionOrder.OLDEST: "created_at, prediction_id",
    PredictionOrder.MOST_OUTLYING: "outlier_score DESC NULLS LAST, created_at DESC, prediction_id",
    PredictionOrder.LEAST_OUTLYING: "outlier_score ASC NULLS LAST, created_at DESC, prediction_id",
    PredictionOrder.MOST_INSTRUCTIVE: "queue_key DESC NULLS LAST, prediction_id",
}


def _predicted_asset(row: asyncpg.Record) -> PredictedAsset:
    return PredictedAsset.model_validate(dict(row))


_INSERT_COLUMNS = (
    "prediction_id, project_id, deployment_id, image_object_key, image_sha256, width, height, source, "
    "tags, metadata, champion_prediction, champion_latency_ms, champion_model_version_id, "
    "shadow_prediction, shadow_latency_ms, shadow_model_version_id, shadow_error, features, predicted_at, "
    "uncertainty, disagreement, image_dhash"
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
        r.features::jsonb, r.predicted_at, r.uncertainty, r.disagreement, r.image_dhash
    FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int[], $7::int[],
        $8::text[], $9::text[], $10::text[], $11::text[], $12::float8[], $13::uuid[], $14::text[],
        $15::float8[], $16::uuid[], $17::text[], $18::text[], $19::timestamptz[], $20::float8[],
        $21::float8[], $22::text[])
        WITH ORDINALITY AS r({_INSERT_COLUMNS}, position)
    ORDER BY r.position  -- of two rows for one image, the first is kept
    ON CONFLICT DO NOTHING RETURNING prediction_id"""
_INSERT_MANY = f"WITH {_RECORD_IMAGES} {_INSERT_PREDICTIONS}"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _insert_columns(db: Db, rows: Sequence[tuple[UUID, PredictionLogged]]) -> list[list[Any]]:
    """The rows as the 22 column arrays `_INSERT_MANY` takes ($1 to $22), with the acquisition score's
    components measured against their deployments' thresholds and queue settings."""
    rankings = {
        row["id"]: (row["confidence_threshold"], ReviewQueueSettings.model_validate(row["review_queue"]))
        for row in await db.fetch(
            "SELECT id, confidence_threshold, review_queue FROM deployments WHERE id = ANY($1::uuid[])",
            list({event.deployment_id for _, event in rows}),
        )
    }
    columns: list[list[Any]] = [[] for _ in range(22)]
    for project_id, event in rows:
        shadow = event.shadow
        ranking = rankings.get(event.deployment_id)  # None: the insert refuses the unknown deployment
        champion = event.champion.prediction
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
            uncertainty(champion, ranking[0], ranking[1].detection_band) if ranking else None,
            disagreement(champion, shadow.prediction if shadow else None),
            event.image_dhash,
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
    return await _insert(db, _INSERT_MANY, *await _insert_columns(db, rows)) if rows else set()


# The predicted assets and the events of those actually inserted, in one statement (atomic without an
# explicit transaction): $1-$22 the rows, $23-$26 the events, $27 their topic, $28 the seconds before
# the relay may send them.
_INSERT_MANY_WITH_EVENTS = f"""
    WITH {_RECORD_IMAGES},
    inserted AS ({_INSERT_PREDICTIONS}),
    kept AS (
        {outbox.INSERT}
        SELECT o.event_id, $27, o.key, o.value, now() + make_interval(secs => $28)
        FROM unnest($23::uuid[], $24::uuid[], $25::bytea[], $26::bytea[])
            AS o(event_id, prediction_id, key, value)
        WHERE o.prediction_id IN (SELECT prediction_id FROM inserted)
    )
    SELECT prediction_id FROM inserted"""


async def insert_predictions_with_events(
    db: Db, rows: Sequence[tuple[UUID, PredictionLogged]], topic: str, relay_after_s: float
) -> set[UUID]:
    """`insert_predictions`, with the events of the rows inserted kept in the outbox for `topic`, relayed
    after `relay_after_s` unless acknowledged (and deleted) first. EventTooLarge for an event no topic
    would take: nothing is written."""
    events = [event for _, event in rows]
    return await _insert(
        db,
        _INSERT_MANY_WITH_EVENTS,
        *await _insert_columns(db, rows),
        [e.event_id for e in events],
        [e.prediction_id for e in events],
        [e.key for e in events],
        [publishable_value(e) for e in events],
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


class UnknownPrediction(NotFound):
    """A prediction a submission names that is not of the deployment (or not in the project)."""

    def __init__(self, prediction_id: UUID) -> None:
        super().__init__(f"prediction {prediction_id} is not of this deployment")
        self.prediction_id = prediction_id


# Each statement takes every selected prediction at once; rows are matched through the primary key (not
# by joining one statement's RETURNING to another, which the planner cannot estimate and loops over).
# The images become the dataset version's assets (or find the ones already there): $1 project, $2 dataset
# version, $3 prediction ids.
_ADD_ASSETS = """
    INSERT INTO assets (project_id, dataset_version_id, object_key, sha256, width, height)
    SELECT $1, $2, image_object_key, image_sha256, width, height
    FROM predicted_assets WHERE project_id = $1 AND prediction_id = ANY($3::uuid[])
    ON CONFLICT (dataset_version_id, sha256) DO UPDATE SET sha256 = EXCLUDED.sha256
    RETURNING id, sha256"""
# Their reviews become the assets' annotations: $1 project, $2 who submitted, $3 and $4 prediction and
# asset ids, pairwise.
_ANNOTATE = """
    INSERT INTO annotations (project_id, asset_id, shapes, created_by, prediction_id)
    SELECT $1, a.asset_id, p.review, $2, p.prediction_id
    FROM unnest($3::uuid[], $4::uuid[]) AS a(prediction_id, asset_id)
    JOIN predicted_assets p ON p.project_id = $1 AND p.prediction_id = a.prediction_id
    ON CONFLICT (asset_id, prediction_id) DO NOTHING"""
# And the predictions SUBMITTED: $1 project, $2 dataset version, $3 and $4 as above.
_MARK_SUBMITTED = """
    UPDATE predicted_assets p
    SET status = 'SUBMITTED', submitted_dataset_version_id = $2, submitted_asset_id = a.asset_id,
        submitted_at = now()
    FROM unnest($3::uuid[], $4::uuid[]) AS a(prediction_id, asset_id)
    WHERE p.project_id = $1 AND p.prediction_id = a.prediction_id"""


async def submit_reviewed(
    db: Db,
    project_id: UUID,
    deployment_id: UUID,
    prediction_ids: Sequence[UUID],
    dataset_version_id: UUID,
    *,
    submitted_by: str,
) -> list[Submission]:
    """Add REVIEWED predictions of the deployment (distinct ids) to one of its feedback-loop dataset
    versions, all of them or none, in a fixed number of statements whatever their count; one Submission
    per id, in order. Repeating the same submission changes nothing. Raises UnknownPrediction for an id
    not of the deployment, IllegalTransition (naming it) for one not REVIEWED."""
    async with transaction(db) as conn:
        in_loop = await conn.fetchval(
            """SELECT true FROM deployment_feedback_dataset_versions
               WHERE project_id = $1 AND deployment_id = $2 AND dataset_version_id = $3""",
            project_id,
            deployment_id,
            dataset_version_id,
        )
        if not in_loop:
            raise NotFound(
                f"dataset version {dataset_version_id} is not in the feedback loop of deployment "
                f"{deployment_id}"
            )
        # Locked in one order, so two submissions sharing predictions cannot deadlock.
        rows = await conn.fetch(
            """SELECT prediction_id, image_sha256, status, submitted_dataset_version_id, submitted_asset_id
               FROM predicted_assets
               WHERE project_id = $1 AND deployment_id = $2 AND prediction_id = ANY($3::uuid[])
               ORDER BY prediction_id FOR UPDATE""",
            project_id,
            deployment_id,
            list(prediction_ids),
        )
        current = {row["prediction_id"]: row for row in rows}
        assets: dict[UUID, UUID] = {}  # each prediction's asset in the dataset version
        fresh = []
        for prediction_id in prediction_ids:
            row = current.get(prediction_id)
            if row is None:
                raise UnknownPrediction(prediction_id)
            already = row["status"] == ReviewStatus.SUBMITTED and row["submitted_asset_id"] is not None
            if already and row["submitted_dataset_version_id"] == dataset_version_id:
                assets[prediction_id] = row["submitted_asset_id"]
            else:
                check_transition(row["status"], ReviewStatus.SUBMITTED, prediction_id)
                fresh.append(prediction_id)
        if fresh:
            added = await conn.fetch(_ADD_ASSETS, project_id, dataset_version_id, fresh)
            by_image = {row["sha256"]: row["id"] for row in added}
            fresh_assets = [by_image[current[p]["image_sha256"]] for p in fresh]
            await conn.execute(_ANNOTATE, project_id, submitted_by, fresh, fresh_assets)
            await conn.execute(_MARK_SUBMITTED, project_id, dataset_version_id, fresh, fresh_assets)
            assets.update(zip(fresh, fresh_assets, strict=True))
    newly = set(fresh)
    return [Submission(p, assets[p], newly_submitted=p in newly) for p in prediction_ids]


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
    if where.predicted_from is not None:
        condition("predicted_at >= {}", where.predicted_from)
    if where.predicted_until is not None:
        condition("predicted_at < {}", where.predicted_until)
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


# Near-duplicates (the same image hash) in one review status are one queue entry: the row ranked highest
# stands for them, with their number. Each row probes the hash index, so the queue still pages through
# its own index.
_SAME_IMAGE = """FROM predicted_assets d WHERE d.deployment_id = p.deployment_id
    AND d.image_dhash = p.image_dhash AND d.status = p.status"""
_REPRESENTATIVE = f"""(p.image_dhash IS NULL OR NOT EXISTS (SELECT 1 {_SAME_IMAGE}
    AND (COALESCE(d.queue_key, -1), d.prediction_id) > (COALESCE(p.queue_key, -1), p.prediction_id)))"""
_DUPLICATES = f"CASE WHEN p.image_dhash IS NULL THEN 1 ELSE (SELECT count(*) {_SAME_IMAGE}) END"


async def list_queue(
    db: Db,
    project_id: UUID,
    deployment_id: UUID,
    where: PredictionFilter,
    *,
    order: PredictionOrder = PredictionOrder.MOST_INSTRUCTIVE,
    limit: int = 50,
    offset: int = 0,
) -> list[tuple[PredictedAsset, int]]:
    """One page of the review queue: as `list_predictions`, but near-duplicates shown once, each with
    how many predictions (itself included) share its image hash in its review status."""
    conditions, args = _where(project_id, deployment_id, where)
    args += [limit, offset]
    rows = await db.fetch(
        f"""SELECT p.*, {_DUPLICATES} AS duplicates FROM predicted_assets p
            WHERE {" AND ".join(conditions)} AND {_REPRESENTATIVE}
            ORDER BY {_ORDER_BY[PredictionOrder(order)]} LIMIT ${len(args) - 1} OFFSET ${len(args)}""",
        *args,
    )
    return [(_predicted_asset(r), r["duplicates"]) for r in rows]


async def count_predictions(
    db: Db,
    project_id: UUID,
    deployment_id: UUID,
    where: PredictionFilter | None = None,
    *,
    distinct_images: bool = False,
) -> int:
    """How many match; with `distinct_images`, how many entries `list_queue` shows for them."""
    conditions, args = _where(project_id, deployment_id, where or PredictionFilter())
    if distinct_images:
        conditions.append(_REPRESENTATIVE)
    return await db.fetchval(
        f"SELECT count(*) FROM predicted_assets p WHERE {' AND '.join(conditions)}", *args
    )


async def set_review_queue(
    db: Db, project_id: UUID, deployment_id: UUID, settings: ReviewQueueSettings
) -> bool:
    """Store a deployment's queue settings and re-rank its TO_REVIEW predictions with them (the
    others keep the key they were reviewed under); False for a deployment not in the project."""
    async with transaction(db) as conn:
        found = await conn.execute(
            "UPDATE deployments SET review_queue = $3, updated_at = now() WHERE project_id = $1 AND id = $2",
            project_id,
            deployment_id,
            settings.model_dump(mode="json"),
        )
        if found != "UPDATE 1":
            return False
        await conn.execute(
            """UPDATE predicted_assets
               SET acquisition_score = cvloop_acquisition_score(uncertainty, outlier_score, disagreement, $3),
                   queue_key = cvloop_queue_key(
                       prediction_id,
                       cvloop_acquisition_score(uncertainty, outlier_score, disagreement, $3),
                       $3)
               WHERE project_id = $1 AND deployment_id = $2 AND status = 'TO_REVIEW'""",
            project_id,
            deployment_id,
            settings.model_dump(mode="json"),
        )
    return True


async def count_by_deployment_and_status(db: Db) -> dict[tuple[UUID, ReviewStatus], int]:
    """Every deployment's predicted assets by review status (what /metrics shows as the review backlog);
    the queue indexes lead with (deployment_id, status), so this reads an index."""
    rows = await db.fetch(
        "SELECT deployment_id, status, count(*) AS n FROM predicted_assets GROUP BY deployment_id, status"
    )
    return {(row["deployment_id"], ReviewStatus(row["status"])): row["n"] for row in rows}


async def submit_all_reviewed(
    db: Db,
    project_id: UUID,
    deployment_id: UUID,
    where: PredictionFilter,
    dataset_version_id: UUID,
    *,
    submitted_by: str,
) -> list[tuple[UUID, UUID]]:
    """Submit every REVIEWED prediction of the deployment that `where` matches (its status is ignored) to
    a feedback-loop dataset version in one statement: the images become assets (one per image, as
    `add_asset` makes them), the reviews their annotations, the predictions SUBMITTED. The rows are
    locked first, so a concurrent submission of the same ones finds them SUBMITTED and skips them; a
    repeat submits nothing. Answers (prediction_id, asset_id) of those newly submitted."""
    conditions, args = _where(project_id, deployment_id, where.model_copy(update={"status": None}))
    args += [dataset_version_id, submitted_by]
    version, by = f"${len(args) - 1}", f"${len(args)}"
    async with transaction(db) as conn:
        in_loop = await conn.fetchval(
            """SELECT true FROM deployment_feedback_dataset_versions
               WHERE project_id = $1 AND deployment_id = $2 AND dataset_version_id = $3""",
            project_id,
            deployment_id,
            dataset_version_id,
        )
        if not in_loop:
            raise NotFound(f"dataset version {dataset_version_id} is not in this deployment's feedback loop")
        rows = await conn.fetch(
            f"""WITH chosen AS (
                    SELECT prediction_id, image_object_key, image_sha256, width, height, review
                    FROM predicted_assets WHERE {" AND ".join(conditions)} AND status = 'REVIEWED'
                    FOR UPDATE
                ), added AS (
                    INSERT INTO assets (project_id, dataset_version_id, object_key, sha256, width, height)
                    SELECT DISTINCT ON (image_sha256) $1, {version}::uuid, image_object_key, image_sha256,
                           width, height
                    FROM chosen ORDER BY image_sha256, prediction_id
                    ON CONFLICT (dataset_version_id, sha256) DO UPDATE SET sha256 = EXCLUDED.sha256
                    RETURNING id, sha256
                ), annotated AS (
                    INSERT INTO annotations (project_id, asset_id, shapes, created_by, prediction_id)
                    SELECT $1, added.id, chosen.review, {by}::text, chosen.prediction_id
                    FROM chosen JOIN added ON added.sha256 = chosen.image_sha256
                    ON CONFLICT (asset_id, prediction_id) DO NOTHING
                )
                UPDATE predicted_assets p
                SET status = 'SUBMITTED', submitted_dataset_version_id = {version}::uuid,
                    submitted_asset_id = added.id, submitted_at = now()
                FROM chosen JOIN added ON added.sha256 = chosen.image_sha256
                WHERE p.project_id = $1 AND p.prediction_id = chosen.prediction_id
                RETURNING p.prediction_id, p.submitted_asset_id""",
            *args,
        )
    return [(r["prediction_id"], r["submitted_asset_id"]) for r in rows]
