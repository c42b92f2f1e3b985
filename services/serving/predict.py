"""One prediction: the champion and the shadow called concurrently on the same image, the champion's
answer returned as soon as it is there, and the `predictions` event published in the background once
the shadow has answered, failed or run out of its budget.

A deployment keeps one predicted asset per image (its first prediction), so the prediction id is derived
from the deployment and the image's sha256: an image served again answers the id of the prediction that
exists (stored once its first event is persisted), never an id that would stay unknown."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from uuid import UUID, uuid5

from schemas.envelope import utcnow
from schemas.events import PredictionLogged, PredictionSource, RoleResult
from schemas.features import features, image_dhash
from schemas.model_io import ModelIO
from schemas.predictions import Prediction
from schemas.topics import Topic
from services.common.domain.agreement import agreement
from services.common.domain.images import DecodedImage
from services.common.domain.preprocess import Prepared, prepare
from services.common.kafka.producer import EventProducer
from services.common.storage import ObjectStore

from . import metrics
from .image_store import ImageStore
from .postprocess import Reading, to_prediction
from .router import Router
from .routing import Route, ServedModel
from .settings import ServingSettings
from .triton import Triton, TritonUnavailable

logger = logging.getLogger(__name__)

# Features of a larger image are computed in a thread (numpy lets go of the GIL; ~80 ms at 1920x1080)
# so the event loop keeps answering; a smaller one costs less inline than the hand-over to a thread.
INLINE_FEATURES_PIXELS = 128 * 128
_PREDICTION_NAMESPACE = UUID("5b0e7d0c-3f7e-4c55-9a51-0d7c2c1f9e63")


def served_prediction_id(deployment_id: UUID, image_sha256: str) -> UUID:
    """The id of the deployment's prediction for the image: the same every time the image is served."""
    return uuid5(_PREDICTION_NAMESPACE, f"{deployment_id}:{image_sha256}")


@dataclass(frozen=True)
class ModelAnswer:
    model: ServedModel
    prediction: Prediction
    latency_ms: float

    def result(self) -> RoleResult:
        return RoleResult(
            model_version_id=self.model.model_version_id,
            prediction=self.prediction,
            latency_ms=self.latency_ms,
        )


class Inputs:
    """The request's image and its model inputs, each made once (champion and shadow often share one)."""

    def __init__(self, decoded: DecodedImage) -> None:
        self.decoded = decoded
        self._prepared: list[tuple[ModelIO, Prepared]] = []

    def prepared(self, io: ModelIO) -> Prepared:
        for made_for, prepared in self._prepared:
            if made_for == io:
                return prepared
        prepared = prepare(self.decoded.pixels, io)
        self._prepared.append((io, prepared))
        return prepared


@dataclass(frozen=True)
class Answer:
    """What the client gets: the champion's prediction."""

    prediction_id: UUID
    champion: ModelAnswer


class Predictor:
    def __init__(
        self,
        router: Router,
        triton: Triton,
        store: ObjectStore,
        producer: EventProducer,
        settings: ServingSettings,
    ) -> None:
        self.router = router
        self.triton = triton
        self.images = ImageStore(store)
        self.producer = producer
        self.timeout_s = settings.serving_triton_timeout_ms / 1000
        self.shadow_budget_s = settings.serving_shadow_budget_ms / 1000
        self.max_shadows = settings.serving_max_shadow_in_flight
        self.max_polygon_points = settings.serving_max_polygon_points
        self._shadows = 0
        self._background: set[asyncio.Task[None]] = set()

    async def call(self, route: Route, model: ServedModel, role: str, image: Inputs) -> ModelAnswer:
        """Preprocess, infer on Triton, postprocess and threshold: one model's answer for the image."""
        deployment = str(route.state.deployment_id)
        version = str(model.model_version_id)
        started = time.perf_counter()
        try:
            prepared = image.prepared(model.io)
            outputs = await self.triton.infer(model, prepared.tensor, self.timeout_s)
            reading = Reading(
                detection_type=route.state.detection_type,
                output_format=model.output_format,
                io=model.io,
                labels=model.labels,
                placement=prepared.placement,
                threshold=route.state.confidence_threshold,
                max_polygon_points=self.max_polygon_points,
            )
            tensors = [outputs[name] for name in model.outputs]
            prediction = to_prediction(tensors, reading).above_threshold(route.state.confidence_threshold)
        except Exception as exc:
            metrics.INFERENCE_ERRORS.labels(deployment, role, version).inc()
            if isinstance(exc, TritonUnavailable):
                metrics.TRITON_UNAVAILABLE.inc()
            raise
        seconds = time.perf_counter() - started
        metrics.INFERENCE_SECONDS.labels(deployment, role, version).observe(seconds)
        return ModelAnswer(model, prediction, seconds * 1000)

    def _start_shadow(self, route: Route, image: Inputs) -> asyncio.Task[ModelAnswer] | str | None:
        """The shadow's call running beside the champion's, or why there is none (None: no shadow)."""
        if route.state.shadow_id is None:
            return None
        if route.shadow is None:
            return route.shadow_error
        if self._shadows >= self.max_shadows:
            metrics.SHADOW_DROPPED.labels(str(route.state.deployment_id), "overload").inc()
            return f"skipped: {self._shadows} shadow calls were already running"
        self._shadows += 1
        metrics.SHADOW_IN_FLIGHT.inc()
        task = asyncio.get_running_loop().create_task(self.call(route, route.shadow, "shadow", image))
        task.add_done_callback(self._shadow_done)
        return task

    def _shadow_done(self, _: asyncio.Task[ModelAnswer]) -> None:
        self._shadows -= 1
        metrics.SHADOW_IN_FLIGHT.dec()

    async def predict(self, route: Route, data: bytes, image: DecodedImage, tags: list[str]) -> Answer:
        """The champion's answer; raises what the champion's call raised (nothing is published then)."""
        assert route.champion is not None  # checked by the caller
        started = time.perf_counter()
        self.router.acquire(route)
        inputs = Inputs(image)
        shadow = self._start_shadow(route, inputs)
        try:
            champion = await self.call(route, route.champion, "champion", inputs)
        except BaseException:
            if isinstance(shadow, asyncio.Task):
                shadow.cancel()
            self.router.release(route)
            raise
        digest = hashlib.sha256(data).hexdigest()
        answer = Answer(served_prediction_id(route.state.deployment_id, digest), champion)
        # The lease passes to the finishing task: the models stay loaded until the shadow is done.
        task = asyncio.get_running_loop().create_task(
            self._finish(route, answer, shadow, started, data, digest, image, tags)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return answer

    async def _finish(
        self,
        route: Route,
        answer: Answer,
        shadow: asyncio.Task[ModelAnswer] | str | None,
        started: float,
        data: bytes,
        digest: str,
        image: DecodedImage,
        tags: list[str],
    ) -> None:
        deployment = str(route.state.deployment_id)
        try:
            shadow_answer, shadow_error = await self._settle_shadow(route, shadow, started)
        finally:
            self.router.release(route)
        if shadow_answer is not None:
            agreed = agreement(answer.champion.prediction, shadow_answer.prediction)
            if agreed is not None:
                metrics.SHADOW_AGREEMENT.labels(
                    deployment, str(shadow_answer.model.model_version_id)
                ).observe(agreed)
        try:
            values, dhash = await self._describe(image, answer.champion.prediction)
            event = PredictionLogged(
                deployment_id=route.state.deployment_id,
                prediction_id=answer.prediction_id,
                detection_type=route.state.detection_type,
                image=await self.images.store(data, digest, image),
                champion=answer.champion.result(),
                shadow=shadow_answer.result() if shadow_answer else None,
                shadow_error=shadow_error,
                features=values,
                image_dhash=dhash,
                source=PredictionSource.SERVING,
                tags=tags,
                predicted_at=utcnow(),
            )
            await self.producer.publish(Topic.PREDICTIONS, event)
            metrics.EVENTS.labels(deployment, "published").inc()
        except Exception as exc:  # the client has its answer; the event is what is lost, loudly
            metrics.EVENTS.labels(deployment, "failed").inc()
            logger.error(
                "prediction event not published",
                extra={
                    "deployment": deployment,
                    "prediction_id": str(answer.prediction_id),
                    "error": repr(exc),
                },
            )

    async def _describe(self, image: DecodedImage, champion: Prediction) -> tuple[dict[str, float], str]:
        """The event's features and image hash; off the loop for a large image."""

        def describe() -> tuple[dict[str, float], str]:
            return features(image.pixels, champion), image_dhash(image.pixels)

        if image.width * image.height <= INLINE_FEATURES_PIXELS:
            return describe()
        return await asyncio.to_thread(describe)

    async def _settle_shadow(
        self, route: Route, shadow: asyncio.Task[ModelAnswer] | str | None, started: float
    ) -> tuple[ModelAnswer | None, str | None]:
        """The shadow's answer, or why there is none; waits at most until the budget since `started`."""
        if not isinstance(shadow, asyncio.Task):
            return None, shadow
        remaining = self.shadow_budget_s - (time.perf_counter() - started)
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                return await shadow, None
        except TimeoutError:
            metrics.SHADOW_DROPPED.labels(str(route.state.deployment_id), "budget").inc()
            return None, f"the shadow gave no answer within its {self.shadow_budget_s * 1000:.0f} ms budget"
        except Exception as exc:
            return None, f"the shadow failed: {exc.__class__.__name__}: {exc}"

    async def drain(self) -> None:
        """Let the running requests' events go out (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
