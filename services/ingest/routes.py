"""The monitor endpoint (docs/api.md, "Ingest"): predictions made elsewhere, one per request or many."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from schemas.api.common import Problem
from schemas.api.ingest import (
    AlreadyLogged,
    BatchItemResult,
    BatchResults,
    MonitorBatch,
    MonitorFields,
    MonitorPrediction,
    PredictionAccepted,
)
from schemas.codec import describe
from schemas.envelope import utcnow
from schemas.events import PredictionLogged, PredictionSource
from services.common.auth import RequireScope
from services.common.domain.deployments import Deployment
from services.common.domain.projects import ApiKey
from services.common.http import BINARY, ApiError, body_of, error_responses, parse_multipart, read_body
from services.common.kafka.producer import EventProducer
from services.common.storage.object_store import ObjectStore

from . import images, intake, recorder
from .deployments import RecentDeployments
from .metrics import PREDICTIONS, REQUEST_SECONDS
from .model_versions import ModelVersionLabels

# Room for base64's third and the JSON around the image; a larger request is refused unread.
_BODY_OVERHEAD = 1024 * 1024
_ITEM = TypeAdapter(MonitorPrediction)
_BATCH_BODY_LIMIT_IMAGES = 4  # a batch body holds at most this many largest images' worth of bytes
_IMAGE_PREPARATION = 16  # images of a batch decoded and stored at once

router = APIRouter()


@dataclass(frozen=True)
class Intake:
    """What the routes use, built by the app's lifespan."""

    pool: asyncpg.Pool
    producer: EventProducer
    store: ObjectStore
    max_image_bytes: int
    queue: recorder.RecordingQueue  # single requests, recorded together when they arrive together
    deployments: RecentDeployments
    model_versions: ModelVersionLabels
    max_image_pixels: int


async def _authorized(request: Request) -> tuple[Intake, ApiKey]:
    """The app's intake and the request's API key, holding the write scope. Plain calls rather than
    FastAPI dependencies, which cost more than the rest of a monitor request."""
    require: RequireScope = request.app.state.require_write
    return request.app.state.intake, await require(request)


async def _deployment(intake_: Intake, key: ApiKey, deployment_id: UUID) -> Deployment:
    deployment = await intake_.deployments.get(intake_.pool, key.project_id, deployment_id)
    if deployment is None:  # another project's deployment reads as a missing one
        PREDICTIONS.labels("unknown", "http", "refused").inc()
        raise ApiError(404, "deployment_id", f"deployment {deployment_id} does not exist")
    return deployment


def _build(deployment: Deployment, item: MonitorFields, image: images.ResolvedImage) -> PredictionLogged:
    return intake.build_event(
        item,
        deployment,
        image.ref,
        image.pixels,
        prediction_id=uuid4(),
        event_id=uuid4(),
        source=PredictionSource.MONITOR_API,
        now=utcnow(),
    )


async def _check_models(intake_: Intake, deployment: Deployment, item: MonitorFields) -> None:
    named = intake.model_versions(item, deployment).values()
    labels = await intake_.model_versions.of(intake_.pool, deployment.project_id, named) if named else {}
    intake.check_labels(item, deployment, labels)


async def _by_key(
    intake_: Intake, deployment: Deployment, item: MonitorFields, object_key: str, owned: Collection[str]
) -> PredictionLogged:
    intake.check_deployment(item, deployment)
    await _check_models(intake_, deployment, item)
    ref = images.reference(object_key, item.width, item.height, owned)
    return _build(deployment, item, images.ResolvedImage(ref, None))


async def _with_bytes(
    intake_: Intake, deployment: Deployment, item: MonitorFields, data: bytes, field: str
) -> PredictionLogged:
    intake.check_deployment(item, deployment)  # before the image is stored
    await _check_models(intake_, deployment, item)
    image = await images.store(intake_.store, data, intake_.max_image_bytes, intake_.max_image_pixels, field)
    intake.check_image_size(item, image.ref)
    return _build(deployment, item, image)


async def _json_item(
    intake_: Intake, key: ApiKey, deployment: Deployment, item: MonitorPrediction
) -> PredictionLogged:
    if item.image_object_key is not None:
        owned = await images.owned_keys(intake_.pool, key.project_id, [item.image_object_key])
        return await _by_key(intake_, deployment, item, item.image_object_key, owned)
    assert item.image_base64 is not None  # the model holds exactly one
    data = images.decode_base64(item.image_base64, intake_.max_image_bytes)
    return await _with_bytes(intake_, deployment, item, data, "image_base64")


async def _multipart_item(
    intake_: Intake, deployment: Deployment, request: Request, body: bytes
) -> PredictionLogged:
    form = await parse_multipart(request, body, "image", max_fields=1)
    image, data = form.get("image"), form.get("data")
    if not isinstance(image, UploadFile):
        raise ApiError(422, "image", "a multipart request needs an 'image' file part")
    if not isinstance(data, str):
        raise ApiError(422, "data", "a multipart request needs a 'data' part holding the JSON fields")
    item = MonitorFields.model_validate_json(data)
    return await _with_bytes(intake_, deployment, item, await image.read(), "image")


def _already_logged(deployment: Deployment, prediction_id: UUID) -> str:
    return f"this image is already logged for deployment {deployment.id} as prediction {prediction_id}"


def _duplicate(deployment: Deployment, prediction_id: UUID) -> JSONResponse:
    """409 in the common error format, with the id of the prediction already logged for the image."""
    message = _already_logged(deployment, prediction_id)
    body = AlreadyLogged(
        prediction_id=prediction_id,
        detail=f"image: {message}",
        errors=[Problem(field="image", message=message)],
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=409)


# The bodies the routes read themselves (bounded as they stream), as the OpenAPI document shows them.
BODY_MODELS = (MonitorPrediction, MonitorBatch)
_MULTIPART = {
    "type": "object",
    "required": ["image", "data"],
    "properties": {
        "image": BINARY,
        "data": {"type": "string", "description": "The other fields (MonitorFields) as JSON."},
    },
}


@router.post(
    "/v1/deployments/{deployment_id}/predictions",
    status_code=201,
    response_model=PredictionAccepted,
    responses={
        **error_responses(409, model=AlreadyLogged),
        **error_responses(413, 415),
    },
    openapi_extra=body_of({"application/json": MonitorPrediction, "multipart/form-data": _MULTIPART}),
)
async def monitor(deployment_id: UUID, request: Request) -> JSONResponse:
    """Log one prediction made elsewhere: JSON (`image_base64` or `image_object_key`), or multipart with
    an `image` file part and a `data` JSON part holding the other fields."""
    started = time.perf_counter()
    intake_, key = await _authorized(request)
    body = await read_body(request, intake_.max_image_bytes * 4 // 3 + _BODY_OVERHEAD)
    deployment = await _deployment(intake_, key, deployment_id)
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            event = await _multipart_item(intake_, deployment, request, body)
        else:
            event = await _json_item(intake_, key, deployment, MonitorPrediction.model_validate_json(body))
        result = await intake_.queue.record((key.project_id, event))
    except (intake.Refused, ValidationError):
        PREDICTIONS.labels(str(deployment.id), "http", "refused").inc()
        raise
    REQUEST_SECONDS.labels("single").observe(time.perf_counter() - started)
    if not result.created:
        PREDICTIONS.labels(str(deployment.id), "http", "duplicate").inc()
        return _duplicate(deployment, result.prediction_id)
    PREDICTIONS.labels(str(deployment.id), "http", "created").inc()
    return JSONResponse({"prediction_id": str(result.prediction_id)}, status_code=201)


@router.post(
    "/v1/deployments/{deployment_id}/predictions:batch",
    response_model=BatchResults,
    responses=error_responses(409, 413),
    openapi_extra=body_of({"application/json": MonitorBatch}),
)
async def monitor_batch(deployment_id: UUID, request: Request) -> BatchResults:
    """Log many predictions; each item is answered on its own, as the single route would have."""
    started = time.perf_counter()
    intake_, key = await _authorized(request)
    body_limit = _BATCH_BODY_LIMIT_IMAGES * (intake_.max_image_bytes * 4 // 3) + _BODY_OVERHEAD
    batch = MonitorBatch.model_validate_json(await read_body(request, body_limit))
    deployment = await _deployment(intake_, key, deployment_id)
    results: list[BatchItemResult | None] = [None] * len(batch.items)
    events: list[PredictionLogged | None] = [None] * len(batch.items)

    def refuse(index: int, error: ValidationError | intake.Refused) -> None:
        if isinstance(error, ValidationError):
            results[index] = BatchItemResult(index=index, status=422, detail=describe(error))
        else:
            results[index] = BatchItemResult(index=index, status=error.status_code, detail=str(error))

    items: list[tuple[int, MonitorPrediction]] = []
    for index, raw in enumerate(batch.items):
        try:
            items.append((index, _ITEM.validate_python(raw)))
        except ValidationError as exc:
            refuse(index, exc)
    owned = await images.owned_keys(
        intake_.pool, key.project_id, (item.image_object_key for _, item in items)
    )
    with_bytes: list[tuple[int, MonitorPrediction]] = []
    for index, item in items:
        if item.image_object_key is None:
            with_bytes.append((index, item))  # decoded and stored below, some at once
            continue
        try:
            events[index] = await _by_key(intake_, deployment, item, item.image_object_key, owned)
        except intake.Refused as exc:
            refuse(index, exc)
    limit = asyncio.Semaphore(_IMAGE_PREPARATION)

    async def prepare(index: int, item: MonitorPrediction) -> None:
        async with limit:
            try:
                events[index] = await _json_item(intake_, key, deployment, item)
            except intake.Refused as exc:
                refuse(index, exc)

    await asyncio.gather(*(prepare(index, item) for index, item in with_bytes))
    accepted = [(i, e) for i, e in enumerate(events) if e is not None]
    recorded = await recorder.record_each(
        intake_.pool,
        intake_.producer,
        [(key.project_id, e) for _, e in accepted],
        acknowledged=intake_.queue.acknowledged,
    )
    for (i, _), result in zip(accepted, recorded, strict=True):
        if isinstance(result, intake.Refused):
            refuse(i, result)
            continue
        results[i] = (
            BatchItemResult(index=i, status=201, prediction_id=result.prediction_id)
            if result.created
            else BatchItemResult(
                index=i,
                status=409,
                prediction_id=result.prediction_id,
                detail=f"image: {_already_logged(deployment, result.prediction_id)}",
            )
        )
    label = str(deployment.id)
    for result in results:
        assert result is not None
        outcome = {201: "created", 409: "duplicate"}.get(result.status, "refused")
        PREDICTIONS.labels(label, "http", outcome).inc()
    REQUEST_SECONDS.labels("batch").observe(time.perf_counter() - started)
    return BatchResults(results=[r for r in results if r is not None])
