"""`predictions.raw`: what external producers publish, checked by the same rules as the monitor
endpoint and recorded the same way; a message that breaks one goes to `deadletter` with the reason."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from schemas.events import PredictionLogged, PredictionSource, RawPrediction
from services.common.db.repositories.deployments import Deployment
from services.common.kafka.producer import EventProducer
from services.common.storage.object_store import ObjectStore

from . import images, intake, recorder
from .deployments import UnknownDeployment, deployments_by_id
from .metrics import CONSUMED, PREDICTIONS

CONSUMER = "cvloop-ingest-raw"


@dataclass(frozen=True)
class RawHandler:
    pool: asyncpg.Pool
    producer: EventProducer
    store: ObjectStore
    max_image_bytes: int

    async def __call__(self, messages: list[RawPrediction]) -> Sequence[Exception | None]:
        deployments = await deployments_by_id(self.pool, (m.deployment_id for m in messages))
        built = await asyncio.gather(
            *(self._event(message, deployments) for message in messages), return_exceptions=True
        )
        outcomes: list[Exception | None] = [b if isinstance(b, Exception) else None for b in built]
        accepted = [(i, b) for i, b in enumerate(built) if isinstance(b, PredictionLogged)]
        results = await recorder.record(
            self.pool,
            self.producer,
            [(deployments[event.deployment_id].project_id, event) for _, event in accepted],
        )
        for (i, event), result in zip(accepted, results, strict=True):
            label = str(event.deployment_id)
            if result.created:
                PREDICTIONS.labels(label, "kafka", "created").inc()
            elif result.prediction_id != event.prediction_id:  # else a redelivery, recorded already
                PREDICTIONS.labels(label, "kafka", "duplicate").inc()
                outcomes[i] = intake.Refused(
                    409,
                    "image",
                    f"this image is already logged for deployment {event.deployment_id} as prediction "
                    f"{result.prediction_id}",
                )
        for outcome in outcomes:
            CONSUMED.labels("raw", "done" if outcome is None else "dead_lettered").inc()
        return outcomes

    async def _event(self, message: RawPrediction, deployments: dict[UUID, Deployment]) -> PredictionLogged:
        deployment = deployments.get(message.deployment_id)
        if deployment is None:
            raise UnknownDeployment(message.deployment_id)
        intake.check_deployment(message, deployment)
        if message.image_object_key is not None:
            image = images.ResolvedImage(
                images.reference(message.image_object_key, message.width, message.height), None
            )
        else:
            assert message.image_base64 is not None  # RawPrediction holds exactly one
            data = images.decode_base64(message.image_base64, self.max_image_bytes)
            image = await images.store(self.store, data, self.max_image_bytes, "image_base64")
            intake.check_image_size(message, image.ref)
        prediction_id, event_id = intake.raw_ids(message.event_id)
        return intake.build_event(
            message,
            deployment,
            image.ref,
            image.pixels,
            prediction_id=prediction_id,
            event_id=event_id,
            source=PredictionSource.KAFKA,
            now=message.occurred_at,  # the message's own time: a redelivery builds the same event
        )
