"""`predictions.raw`: what external producers publish, checked by the same rules as the monitor
endpoint and recorded the same way; a message that breaks one goes to `deadletter` with the reason."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from schemas.events import PredictionLogged, PredictionSource, RawPrediction
from schemas.topics import ConsumerGroup
from services.common.domain.deployments import Deployment
from services.common.kafka.failures import MESSAGE_ERRORS
from services.common.kafka.producer import EventProducer
from services.common.storage.object_store import ObjectStore

from . import images, intake, recorder
from .deployments import UnknownDeployment, deployments_by_id
from .metrics import CONSUMED, PREDICTIONS
from .model_versions import ModelVersionLabels

CONSUMER = ConsumerGroup.INGEST_RAW


@dataclass(frozen=True)
class RawHandler:
    pool: asyncpg.Pool
    producer: EventProducer
    store: ObjectStore
    max_image_bytes: int
    max_image_pixels: int
    model_versions: ModelVersionLabels = field(default_factory=ModelVersionLabels)

    async def __call__(self, messages: list[RawPrediction]) -> Sequence[Exception | None]:
        deployments = await deployments_by_id(self.pool, (m.deployment_id for m in messages))
        labels = await self._labels(messages, deployments)
        owned = await self._owned(messages, deployments)
        built: list[PredictionLogged | Exception | None] = []
        with_bytes: list[int] = []
        for i, message in enumerate(messages):
            try:
                built.append(self._check(message, deployments, labels, owned))
            except MESSAGE_ERRORS as exc:
                built.append(exc)
                continue
            if message.image_base64 is not None:
                with_bytes.append(i)
        # Images that came as bytes are decoded and stored concurrently; the rest needs no I/O.
        stored = await asyncio.gather(
            *(self._with_image(messages[i], deployments[messages[i].deployment_id]) for i in with_bytes),
            return_exceptions=True,
        )
        for i, event in zip(with_bytes, stored, strict=True):
            if isinstance(event, BaseException) and not isinstance(event, Exception):
                raise event
            built[i] = event
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
            elif not result.is_replay_of(event):
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

    async def _labels(
        self, messages: list[RawPrediction], deployments: dict[UUID, Deployment]
    ) -> dict[UUID, dict[UUID, list[str] | None]]:
        """The labels of the model versions the messages name, by project: one query per project."""
        named: dict[UUID, set[UUID]] = defaultdict(set)
        for message in messages:
            deployment = deployments.get(message.deployment_id)
            if deployment is not None:
                named[deployment.project_id].update(intake.model_versions(message, deployment).values())
        return {
            project_id: await self.model_versions.of(self.pool, project_id, ids)
            for project_id, ids in named.items()
        }

    async def _owned(
        self, messages: list[RawPrediction], deployments: dict[UUID, Deployment]
    ) -> dict[UUID, set[str]]:
        """By project, the image keys the messages name that are that project's objects."""
        named: dict[UUID, list[str | None]] = defaultdict(list)
        for message in messages:
            if message.deployment_id in deployments:
                named[deployments[message.deployment_id].project_id].append(message.image_object_key)
        return {project: await images.owned_keys(self.pool, project, keys) for project, keys in named.items()}

    def _check(
        self,
        message: RawPrediction,
        deployments: dict[UUID, Deployment],
        labels: dict[UUID, dict[UUID, list[str] | None]],
        owned: dict[UUID, set[str]],
    ) -> PredictionLogged | None:
        """The event of a message naming its image by key (one of its project's objects); None for one
        carrying the bytes (checked, but its event needs the stored image)."""
        deployment = deployments.get(message.deployment_id)
        if deployment is None:
            raise UnknownDeployment(message.deployment_id)
        intake.check_deployment(message, deployment)
        intake.check_labels(message, deployment, labels.get(deployment.project_id, {}))
        if message.image_object_key is None:
            return None
        ref = images.reference(
            message.image_object_key, message.width, message.height, owned[deployment.project_id]
        )
        return self._event(message, deployment, images.ResolvedImage(ref, None))

    async def _with_image(self, message: RawPrediction, deployment: Deployment) -> PredictionLogged:
        assert message.image_base64 is not None
        data = images.decode_base64(message.image_base64, self.max_image_bytes)
        image = await images.store(
            self.store, data, self.max_image_bytes, self.max_image_pixels, "image_base64"
        )
        intake.check_image_size(message, image.ref)
        return self._event(message, deployment, image)

    def _event(
        self, message: RawPrediction, deployment: Deployment, image: images.ResolvedImage
    ) -> PredictionLogged:
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
