"""Replay before going live: when a version becomes a served deployment's shadow, it is run over the
deployment's latest reviewed images (already in the object store) and its answers are recorded as shadow
predictions on those assets, so the champion-vs-shadow comparison and the promotion gate have paired
evidence at once instead of waiting for new traffic.

It runs here, in serving, rather than as a job: the shadow is already loaded on Triton for this
deployment, and `Predictor.call` is the very path live shadow answers take (preprocessing, Triton,
postprocessing, threshold), so a replayed answer is what the shadow would have answered live. A job
would need Postgres and the object store, credentials jobs never get.

Exactly once: one `shadow_replays` row per deployment and shadow version (a finished one is not run
again, an unfinished one is resumed at the next start), and an answer is written only where that version
has not answered yet."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID, uuid5

from pydantic import TypeAdapter

from schemas.events import DeploymentKind, ShadowReplayed
from schemas.predictions import Prediction
from schemas.topics import Topic
from schemas.vocabulary import ReplayStatus
from services.common.db.repositories import shadow_replays
from services.common.db.repositories.base import Db
from services.common.domain.acquisition import disagreement
from services.common.domain.deployments import ReplayImage
from services.common.domain.images import decode_image
from services.common.kafka.producer import EventProducer
from services.common.storage import ObjectStore, is_missing

from . import metrics
from .predict import Inputs, Predictor
from .router import Router
from .routing import Route, ServedModel
from .settings import ServingSettings
from .triton import ModelNotLoaded, TritonError, TritonUnavailable

logger = logging.getLogger(__name__)

_PREDICTION: TypeAdapter[Prediction] = TypeAdapter(Prediction)
_REPLAYED_NAMESPACE = UUID("0b7f4c52-9d1e-4a36-8e2b-6c3f5a9d7e14")


def _image_fault(exc: Exception) -> bool:
    if isinstance(exc, TritonError):
        return not isinstance(exc, (TritonUnavailable, ModelNotLoaded))
    return is_missing(exc) or isinstance(exc, ValueError)


MAX_RETRY_DELAY_S = 60.0


def retry_delay_s(first_s: float, failures: int) -> float:
    """The pause after `failures` failed attempts in a row: `first_s`, doubled after each, at most
    MAX_RETRY_DELAY_S."""
    return min(MAX_RETRY_DELAY_S, first_s * 2 ** (failures - 1))


class ShadowReplayer:
    def __init__(
        self,
        db: Db,
        router: Router,
        predictor: Predictor,
        store: ObjectStore,
        producer: EventProducer,
        settings: ServingSettings,
    ) -> None:
        self.db = db
        self.producer = producer
        self.router = router
        self.predictor = predictor
        self.store = store
        self.settings = settings
        self._running: dict[tuple[UUID, UUID], asyncio.Task[None]] = {}

    def request(self, route: Route) -> None:
        """Replay the route's shadow in the background, unless it is replaying already here."""
        state = route.state
        if (
            self.settings.serving_replay_reviews == 0
            or state.kind != DeploymentKind.SERVED
            or state.champion_id is None
            or state.shadow_id is None
        ):
            return
        key = (state.deployment_id, state.shadow_id)
        if key in self._running:
            return
        task = asyncio.get_running_loop().create_task(self._replay(route, state.champion_id, state.shadow_id))
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))

    async def _replay(self, route: Route, champion_id: UUID, shadow_id: UUID) -> None:
        """`_attempt` until it gets through, pausing (doubling from `serving_replay_retry_s`, up to
        MAX_RETRY_DELAY_S) after each outage, while the version is still the deployment's shadow; after
        `serving_replay_attempts` it stays failed until the next start or shadow change."""
        deployment_id = route.state.deployment_id
        extra = {"deployment": str(deployment_id), "shadow": str(shadow_id)}
        for attempt in range(1, self.settings.serving_replay_attempts + 1):
            current = self.router.route(deployment_id)
            if current is None or (current.state.champion_id, current.state.shadow_id) != (
                champion_id,
                shadow_id,
            ):
                return  # no longer this deployment's shadow (or champion): its replay means nothing now
            error = await self._attempt(current, champion_id, shadow_id)
            if error is None:
                return
            if attempt == self.settings.serving_replay_attempts:
                break
            delay = retry_delay_s(self.settings.serving_replay_retry_s, attempt)
            logger.warning(
                "shadow replay failed; retrying", extra={**extra, "error": error, "retry_in_s": delay}
            )
            await asyncio.sleep(delay)
        metrics.REPLAYS.labels(str(deployment_id), ReplayStatus.FAILED.value).inc()
        logger.warning("shadow replay failed", extra={**extra, "error": error})

    async def _attempt(self, route: Route, champion_id: UUID, shadow_id: UUID) -> str | None:
        """One run of the replay (a resumed one skips the images its shadow answered); the error that
        stopped it, recorded on its row, or None."""
        deployment_id = route.state.deployment_id
        extra = {"deployment": str(deployment_id), "shadow": str(shadow_id)}
        try:
            if await shadow_replays.start(self.db, route.state.project_id, deployment_id, shadow_id) is None:
                return None  # replayed before
            if route.shadow is None:
                raise TritonError(route.shadow_error or "the shadow is not loaded")
            selected, pending = await shadow_replays.to_replay(
                self.db, deployment_id, champion_id, shadow_id, self.settings.serving_replay_reviews
            )
            await shadow_replays.set_selected(self.db, deployment_id, shadow_id, selected)
            with self.router.lease(route):  # the shadow stays on Triton until the replay is done
                for image in pending:
                    await self._answer(route, route.shadow, image)
            await shadow_replays.finish(self.db, deployment_id, shadow_id, ReplayStatus.DONE)
            metrics.REPLAYS.labels(str(deployment_id), ReplayStatus.DONE.value).inc()
            logger.info("shadow replayed", extra={**extra, "selected": selected, "pending": len(pending)})
            if selected:
                await self._announce(deployment_id, shadow_id, selected)
            return None
        except asyncio.CancelledError:
            raise  # shutting down: the row stays running and the next start resumes it
        except Exception as exc:
            error = f"{exc.__class__.__name__}: {exc}"[:1000]
            try:
                await shadow_replays.finish(self.db, deployment_id, shadow_id, ReplayStatus.FAILED, error)
            except Exception as db_error:  # Postgres gone: the row stays running, resumed at the next start
                logger.warning("shadow replay not marked failed", extra={**extra, "error": repr(db_error)})
            return error

    async def _announce(self, deployment_id: UUID, shadow_id: UUID, selected: int) -> None:
        """`ShadowReplayed` on `reviews`, so the promotion gate decides on the replayed pairs now. Its id
        derives from the deployment and the shadow: a resumed replay publishes the same event. Lost (Kafka
        down), the gate decides at the deployment's next review instead."""
        event = ShadowReplayed(
            event_id=uuid5(_REPLAYED_NAMESPACE, f"{deployment_id}:{shadow_id}"),
            deployment_id=deployment_id,
            shadow_model_version_id=shadow_id,
            selected=selected,
        )
        try:
            await self.producer.publish(Topic.REVIEWS, event)
        except Exception as exc:
            logger.warning(
                "shadow replay not announced",
                extra={"deployment": str(deployment_id), "shadow": str(shadow_id), "error": repr(exc)},
            )

    async def _answer(self, route: Route, shadow: ServedModel, image: ReplayImage) -> None:
        """Run the shadow on one reviewed image and record its answer (once)."""
        deployment = str(route.state.deployment_id)
        version = str(shadow.model_version_id)
        try:
            data = await asyncio.to_thread(self.store.get_bytes, image.image_object_key)
            decoded = decode_image(data, self.settings.max_image_bytes, self.settings.max_image_pixels)
            answer = await self.predictor.call(route, shadow, "replay", Inputs(decoded))
        except Exception as exc:
            # The image's or the model's fault (deleted, undecodable, the model failing on it or giving
            # an answer its outputs cannot make): counted, and the other images are still replayed.
            # Triton unreachable or the model unloaded, the store or Postgres gone: the replay stops, and
            # the next start or shadow change resumes it.
            if not _image_fault(exc):
                raise
            metrics.REPLAYED.labels(deployment, version, "failed").inc()
            await shadow_replays.count_failure(self.db, route.state.deployment_id, shadow.model_version_id)
            logger.warning(
                "shadow replay skipped an image",
                extra={
                    "deployment": deployment,
                    "prediction_id": str(image.prediction_id),
                    "error": str(exc),
                },
            )
            return
        champion = _PREDICTION.validate_python(image.champion_prediction)
        recorded = await shadow_replays.record_answer(
            self.db,
            route.state.deployment_id,
            image.prediction_id,
            shadow.model_version_id,
            answer.prediction.model_dump(mode="json"),
            answer.latency_ms,
            disagreement(champion, answer.prediction),
        )
        metrics.REPLAYED.labels(deployment, version, "recorded" if recorded else "already").inc()

    async def stop(self) -> None:
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
