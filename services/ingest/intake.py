"""The rules every prediction entering through ingest obeys, HTTP or `predictions.raw` alike (pure).

A monitored prediction becomes a `PredictionLogged` when its deployment is monitoring-only, its
predictions are of the deployment's detection type, and its image is known; shapes scored under the
deployment's confidence threshold are dropped, model versions left out are the deployment's own, and
the features come from the shared feature function.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid5

from schemas.events import DeploymentKind, ImageRef, PredictionLogged, PredictionSource, RoleResult
from schemas.features import RgbImage, features, prediction_features
from services.common.domain.deployments import Deployment
from services.common.domain.outbox import EventTooLarge

# Ids of what a `predictions.raw` message becomes are derived from its event id, so a redelivered
# message is recognised as the same prediction rather than the same image sent twice.
_RAW_NAMESPACE = UUID("0f5e0e43-8a0c-4f7c-b1c4-2f6a1d9e6b57")


class Refused(ValueError):
    """A prediction that breaks a rule: an HTTP status and the field at fault; dead-lettered on Kafka
    (a ValueError, so the consumer loop does so)."""

    def __init__(self, status_code: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.status_code = status_code
        self.field = field
        self.message = message


def refusal(error: Exception) -> Refused:
    """What to answer for a prediction its recording refused for what it holds (failures.is_message_error):
    an event no topic takes (413 naming its field), a model version or deployment outside the project, a
    value Postgres refuses (422)."""
    if isinstance(error, Refused):
        return error
    if isinstance(error, EventTooLarge):
        return Refused(413, error.field, str(error))
    if isinstance(error, LookupError):
        return Refused(422, "model_version_id", str(error))
    return Refused(422, "", f"a value cannot be stored: {error}")


class MonitoredPrediction(Protocol):
    """What both entrances carry: a monitor request body and a `predictions.raw` message."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def champion(self) -> RoleResult: ...
    @property
    def shadow(self) -> RoleResult | None: ...
    @property
    def source(self) -> str: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @property
    def predicted_at(self) -> datetime | None: ...


def raw_ids(raw_event_id: UUID) -> tuple[UUID, UUID]:
    """(prediction id, event id) of the prediction a `predictions.raw` message becomes."""
    return uuid5(_RAW_NAMESPACE, f"prediction:{raw_event_id}"), uuid5(_RAW_NAMESPACE, f"event:{raw_event_id}")


def check_deployment(item: MonitoredPrediction, deployment: Deployment) -> None:
    """Refuse a served deployment (its predictions come from serving) and predictions of another type."""
    if deployment.kind is not DeploymentKind.MONITORING_ONLY:
        raise Refused(
            409,
            "deployment_id",
            f"deployment {deployment.id} is served by cvloop; only monitoring-only deployments accept "
            "predictions made elsewhere",
        )
    for role, result in (("champion", item.champion), ("shadow", item.shadow)):
        if result is not None and result.prediction.type != deployment.detection_type:
            raise Refused(
                422,
                f"{role}.prediction.type",
                f"is {result.prediction.type} but the deployment's detection type is "
                f"{deployment.detection_type}",
            )


def check_image_size(item: MonitoredPrediction, image: ImageRef) -> None:
    """The stated size must be the decoded image's: shapes were checked against the stated one."""
    if (item.width, item.height) != (image.width, image.height):
        raise Refused(
            422, "width", f"{item.width}x{item.height} is not the image's size {image.width}x{image.height}"
        )


def _thresholded(result: RoleResult, threshold: float, model_version_id: UUID | None) -> RoleResult:
    # Parts of a validated result, fewer shapes: nothing to validate again.
    return RoleResult.model_construct(
        model_version_id=result.model_version_id or model_version_id,
        prediction=result.prediction.above_threshold(threshold),
        latency_ms=result.latency_ms,
    )


def build_event(
    item: MonitoredPrediction,
    deployment: Deployment,
    image: ImageRef,
    pixels: RgbImage | None,
    *,
    prediction_id: UUID,
    event_id: UUID,
    source: PredictionSource,
    now: datetime,
) -> PredictionLogged:
    """The `predictions` event of a monitored prediction. Image features need the pixels: a prediction
    sent with an object key only carries the features of the champion's answer."""
    check_deployment(item, deployment)
    champion = _thresholded(
        item.champion, deployment.confidence_threshold, deployment.champion_model_version_id
    )
    shadow = (
        _thresholded(item.shadow, deployment.confidence_threshold, deployment.shadow_model_version_id)
        if item.shadow is not None
        else None
    )
    values = (
        features(pixels, champion.prediction)
        if pixels is not None
        else prediction_features(champion.prediction)
    )
    return PredictionLogged.model_construct(
        event_id=event_id,
        type="prediction.logged",
        schema_version=1,
        occurred_at=now,
        deployment_id=deployment.id,
        prediction_id=prediction_id,
        detection_type=deployment.detection_type,
        image=image,
        champion=champion,
        shadow=shadow,
        shadow_error=None,
        features=values,
        source=source,
        tags=list(dict.fromkeys(item.tags)),
        # The producer's free-text name has no column of its own: it travels in the metadata.
        metadata={**item.metadata, "source": item.source},
        predicted_at=item.predicted_at or now,
    )
