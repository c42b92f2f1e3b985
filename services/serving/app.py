"""The serving gateway: `POST /v1/deployments/{id}/predict`, the KServe v2 passthrough under
`/v2/models/{deployment id}`, health, readiness and metrics; its start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

import httpx
import orjson
from fastapi import Depends, FastAPI, Query, Request, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from schemas.api.serving import ServedPrediction
from schemas.events import MAX_TAGS, DeploymentKind, Tag
from schemas.inference import InferRefused, InferRequest, parse_infer_request
from schemas.object_keys import IMAGE_CONTENT_TYPES
from schemas.vocabulary import Scope
from services.common.auth import RequireScope
from services.common.db.pool import open_pool
from services.common.domain.images import DecodedImage, ImageTooLarge, InvalidImage, decode_image
from services.common.domain.projects import ApiKey
from services.common.http import (
    BINARY,
    ApiError,
    body_of,
    create_app,
    error_response,
    error_responses,
    parse_multipart,
    problems_of,
    read_body,
)
from services.common.kafka.producer import EventProducer
from services.common.key_changes import KeyChanges
from services.common.storage import ObjectStore

from . import metrics
from .follower import DeploymentFollower
from .models import ModelLoader
from .passthrough import Passthrough
from .postprocess import OutputError
from .predict import Predictor
from .replay import ShadowReplayer
from .router import Router
from .routing import Route
from .settings import ServingSettings
from .triton import ModelNotLoaded, Triton, TritonError, TritonUnavailable

logger = logging.getLogger(__name__)

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around a multipart image
INLINE_PARSE_BYTES = 64 * 1024  # a larger v2 request is checked in a thread: parsing it takes milliseconds


@dataclass
class Gateway:
    """Everything the routes use, built by the lifespan."""

    settings: ServingSettings
    router: Router
    predictor: Predictor
    passthrough: Passthrough
    follower: DeploymentFollower


async def _image_bytes(request: Request, max_bytes: int) -> bytes:
    """The image: the raw body, or the multipart part named `image`."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await read_body(request, max_bytes, "image")
    body = await read_body(request, max_bytes + MULTIPART_OVERHEAD, "image")
    form = await parse_multipart(request, body, "image", max_fields=8)
    part = form.get("image")
    if not isinstance(part, UploadFile):
        raise ApiError(422, "image", "a multipart body needs a file part named `image`")
    return await part.read()


def _decode(data: bytes, settings: ServingSettings) -> DecodedImage:
    try:
        return decode_image(data, settings.max_image_bytes, settings.max_image_pixels)
    except ImageTooLarge as exc:
        raise ApiError(413, "image", str(exc)) from None
    except InvalidImage as exc:
        raise ApiError(415, "image", str(exc)) from None


def _routed(gateway: Gateway, deployment_id: UUID, project_id: UUID) -> Route:
    """The deployment's route when it can answer now; else an ApiError saying why."""
    route = gateway.router.route(deployment_id)
    if route is None or route.state.project_id != project_id:  # another project's: as if missing
        metrics.ERRORS.labels("", "unknown_deployment").inc()
        raise ApiError(404, "deployment_id", f"deployment {deployment_id} is not served here")
    deployment = str(deployment_id)
    if route.state.kind != DeploymentKind.SERVED:
        metrics.ERRORS.labels(deployment, "monitoring_only").inc()
        raise ApiError(
            409,
            "deployment_id",
            f"deployment {deployment_id} is monitoring-only: send its predictions to ingest",
        )
    if route.champion is None:
        reason = "triton_unavailable" if route.triton_unreachable else "champion_not_loaded"
        metrics.ERRORS.labels(deployment, reason).inc()
        raise ApiError(503, "deployment_id", route.champion_error or "the champion is not loaded")
    return route


def _inference_problem(exc: Exception, deployment: str) -> ApiError:
    if isinstance(exc, TritonUnavailable):
        metrics.ERRORS.labels(deployment, "triton_unavailable").inc()
        return ApiError(503, "", str(exc))
    if isinstance(exc, ModelNotLoaded):
        metrics.ERRORS.labels(deployment, "champion_not_loaded").inc()
        return ApiError(503, "", f"the champion is not loaded on Triton (reloading): {exc}")
    metrics.ERRORS.labels(deployment, "inference_failed").inc()
    return ApiError(502, "", f"the champion failed: {exc}")


async def _checked_infer_request(body: bytes, header_length: str | None) -> None:
    """Raise what is wrong with the KServe v2 request; a large one is parsed off the event loop."""
    if len(body) <= INLINE_PARSE_BYTES:
        parse_infer_request(body, header_length)
    else:
        await asyncio.to_thread(parse_infer_request, body, header_length)


def _refused_infer(exc: ValueError) -> Response:
    """400 in the common format, with KServe's `error` beside it, which tritonclient shows its caller."""
    if isinstance(exc, ValidationError):
        problems = problems_of(exc.errors(include_url=False), ("body",))
    else:
        problems = [{"field": "body", "message": str(exc)}]
    return error_response(400, problems, error="; ".join(f"{p['field']}: {p['message']}" for p in problems))


def build_app(settings: ServingSettings) -> FastAPI:
    gateway: Gateway | None = None

    @contextlib.asynccontextmanager
    async def lifespan(started: FastAPI) -> AsyncIterator[None]:
        nonlocal gateway
        async with contextlib.AsyncExitStack() as stack:
            pool = await open_pool(settings.database_url)
            stack.push_async_callback(pool.close)
            started.state.pool = pool  # where services.common.auth finds it
            store = ObjectStore.from_settings(settings)
            await asyncio.to_thread(store.ensure_bucket)
            triton = Triton(settings.triton_grpc_url)
            stack.push_async_callback(triton.close)
            http = httpx.AsyncClient(
                base_url=f"http://{settings.triton_url}", timeout=settings.serving_triton_timeout_ms / 1000
            )
            stack.push_async_callback(http.aclose)
            producer = EventProducer.from_settings(settings)
            await producer.start()
            stack.push_async_callback(producer.stop)
            router = Router(ModelLoader(pool, store, triton, settings.triton_model_backend))
            stack.push_async_callback(router.drain)
            predictor = Predictor(router, triton, store, producer, settings)
            passthrough = Passthrough(router, http, settings.serving_shadow_budget_ms / 1000)
            stop = asyncio.Event()
            replayer = ShadowReplayer(pool, router, predictor, store, producer, settings)
            stack.push_async_callback(replayer.stop)
            follower = DeploymentFollower(settings, pool, router, producer, replayer)
            consumer = await follower.sync()  # every routed model is loaded before serving listens
            follower_task = asyncio.create_task(follower.follow(consumer, stop))
            reconciler = asyncio.create_task(_reconcile(router, settings.serving_reconcile_interval_s))
            key_changes = asyncio.create_task(
                KeyChanges(settings, "serving", [writer, reader], producer).run(stop)
            )
            gateway = Gateway(
                settings,
                router,
                predictor,
                passthrough,
                follower,
            )
            # What start-up built lives as long as the process: the collector's full passes skip it
            # (a full pass over every module, model and client stalls all requests for ~0.1 s).
            gc.freeze()
            try:
                yield
            finally:
                gateway = None
                stop.set()
                reconciler.cancel()
                await asyncio.gather(follower_task, reconciler, key_changes, return_exceptions=True)
                await predictor.drain()
                await passthrough.drain()

    async def ready() -> str | None:
        if gateway is None:
            return "starting"
        if not gateway.follower.following:
            return "not following the deployments topic (re-reading the routing)"
        return None

    app = create_app("cvloop serving", ready, lifespan=lifespan, body_models=[InferRequest])

    # Each route's key check; a live key is trusted for a while (a predict must not cost a database write),
    # and forgotten as soon as it changes (KeyChanges).
    writer = RequireScope(Scope.WRITE, remember_s=settings.serving_auth_cache_s)
    reader = RequireScope(Scope.READ, remember_s=settings.serving_auth_cache_s)

    def _gateway() -> Gateway:
        if gateway is None:
            raise ApiError(503, "", "serving is starting or stopping")
        return gateway

    @app.post(
        "/v1/deployments/{deployment_id}/predict",
        responses={200: {"model": ServedPrediction}, **error_responses(409, 413, 415, 502, 503)},
        openapi_extra=body_of(
            {
                **dict.fromkeys(IMAGE_CONTENT_TYPES, BINARY),
                "application/octet-stream": BINARY,
                "multipart/form-data": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": BINARY},
                },
            },
            "The image file (JPEG, PNG or WebP, told by its bytes), or a multipart `image` part.",
        ),
    )
    async def predict(
        deployment_id: UUID,
        request: Request,
        key: ApiKey = Depends(writer),  # noqa: B008 (FastAPI's idiom; the checker is built with settings)
        tags: Annotated[list[Tag], Query(max_length=MAX_TAGS)] = [],  # noqa: B006 (FastAPI copies defaults)
    ) -> Response:
        """The champion's prediction for the image (raw body or multipart `image`)."""
        gw = _gateway()
        project = key.project_id
        _routed(gw, deployment_id, project)  # refuse before reading the body
        deployment = str(deployment_id)
        with metrics.REQUEST_SECONDS.labels(deployment).time():
            try:
                data = await _image_bytes(request, gw.settings.max_image_bytes)
                image = _decode(data, gw.settings)
            except ApiError as problem:
                metrics.ERRORS.labels(deployment, "bad_image").inc()
                raise problem
            # Routed again after the body's awaits, then leased with no await in between: a model the
            # routing retired meanwhile may already be leaving Triton.
            route = _routed(gw, deployment_id, project)
            try:
                answer = await gw.predictor.predict(route, data, image, tags)
            except (TritonError, OutputError) as exc:
                raise _inference_problem(exc, deployment) from None
        champion = answer.champion
        metrics.REQUESTS.labels(deployment, "predict", "200").inc()
        body = {
            "prediction_id": str(answer.prediction_id),
            "model_version_id": str(champion.model.model_version_id),
            "prediction": champion.prediction.model_dump(mode="json"),
            "latency_ms": champion.latency_ms,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    def _v2_route(deployment_id: UUID, key: ApiKey) -> tuple[Gateway, Route]:
        gw = _gateway()
        return gw, _routed(gw, deployment_id, key.project_id)

    @app.post(
        "/v2/models/{deployment_id}/infer",
        responses={
            200: {"description": "Triton's answer, as Triton sent it (KServe v2 JSON or binary)."},
            **error_responses(409, 413, 502, 503),
            400: {
                "model": InferRefused,
                "description": "Not a KServe v2 request serving accepts (the common error body and "
                "`error`), or one Triton refused (its own body: `error` only).",
            },
        },
        openapi_extra=body_of(
            {
                "application/json": InferRequest,
                "application/octet-stream": {
                    **BINARY,
                    "description": "The binary tensor extension: the JSON header (its length in "
                    "Inference-Header-Content-Length), then each binary tensor's bytes.",
                },
            }
        ),
    )
    @app.post("/v2/models/{deployment_id}/versions/{version}/infer", include_in_schema=False)
    async def v2_infer(
        deployment_id: UUID,
        request: Request,
        key: ApiKey = Depends(writer),  # noqa: B008
    ) -> Response:
        """KServe v2 inference on the champion (JSON or binary tensors), answered as Triton answers."""
        gw = _gateway()
        project = key.project_id
        _routed(gw, deployment_id, project)  # refuse before reading the body
        body = await read_body(request, gw.settings.max_image_bytes)
        try:
            await _checked_infer_request(body, request.headers.get("inference-header-content-length"))
        except ValueError as exc:  # pydantic's ValidationError included
            metrics.ERRORS.labels(str(deployment_id), "bad_request").inc()
            return _refused_infer(exc)
        route = _routed(gw, deployment_id, project)  # leased by infer before it awaits anything
        try:
            answer = await gw.passthrough.infer(route, body, dict(request.headers))
        except httpx.HTTPError as exc:
            metrics.TRITON_UNAVAILABLE.inc()
            raise _inference_problem(
                TritonUnavailable(f"Triton is unreachable: {exc}"), str(deployment_id)
            ) from None
        metrics.REQUESTS.labels(str(deployment_id), "v2_infer", str(answer.status_code)).inc()
        return answer

    @app.get("/v2/models/{deployment_id}", responses=error_responses(409, 503))
    async def v2_metadata(
        deployment_id: UUID,
        key: ApiKey = Depends(reader),  # noqa: B008
    ) -> Response:
        gw, route = _v2_route(deployment_id, key)
        assert route.champion is not None
        return await gw.passthrough.metadata(route.champion)

    @app.get("/v2/models/{deployment_id}/ready", responses=error_responses(409, 503))
    async def v2_ready(
        deployment_id: UUID,
        key: ApiKey = Depends(reader),  # noqa: B008
    ) -> Response:
        gw, route = _v2_route(deployment_id, key)
        assert route.champion is not None
        return await gw.passthrough.metadata(route.champion, "/ready")

    return app


async def _reconcile(router: Router, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await router.reconcile()
        except Exception:  # keep reconciling: the next round may find Postgres or Triton back
            logger.exception("reconciling the routes failed")
