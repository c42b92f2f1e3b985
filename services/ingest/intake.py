"""The rules every prediction entering through ingest obeys, HTTP or `predictions.raw` alike (pure).

A monitored prediction becomes a `PredictionLogged` when its deployment is monitoring-only, its
predictions are of the deployment's detection type, and its image is known; shapes scored under the
deployment's confidence threshold are dropped, model versions left out are the deployment's own, and
the features come from the shared feature function.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid5

from schemas.events import DeploymentKind, ImageRef, PredictionLogged, PredictionSource, RoleResult
from schemas.features import RgbImage, features, image_dhash, prediction_features
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


def model_versions(item: MonitoredPrediction, deployment: Deployment) -> dict[str, UUID]:
    """The model version each role's answer is attributed to, by role: the one named, else the
    deployment's own for that role (none when it has none)."""
    named = {
        "champion": (item.champion, deployment.champion_model_version_id),
        "shadow": (item.shadow, deployment.shadow_model_version_id),
    }
    return {
        role: result.model_version_id or default
        for role, (result, default) in named.items()
        if result is not None and (result.model_version_id or default) is not None
    }


def check_labels(
    item: MonitoredPrediction, deployment: Deployment, labels: Mapping[UUID, list[str] | None]
) -> None:
    """Each role's model version must be of the deployment's project (`labels` holds those that are),
    and its classes in that model version's labelmap (when it has one): what review and submission
    would refuse later is refused now."""
    for role, model_version_id in model_versions(item, deployment).items():
        result = item.champion if role == "champion" else item.shadow
        assert result is not None  # model_versions names roles that answered
        if model_version_id not in labels:
            raise Refused(
                404, f"{role}.model_version_id", f"model version {model_version_id} is not in this project"
            )
        labelmap = labels[model_version_id]
        if labelmap is None:
            continue
        known = set(labelmap)
        for i, label in enumerate(result.prediction.classes):
            if label not in known:
                raise Refused(
                    422,
                    f"{role}.prediction.classes[{i}]",
                    f"{label!r} is not in the labelmap of model version {model_version_id}",
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
        image_dhash=image_dhash(pixels) if pixels is not None else None,
        source=source,
        tags=list(dict.fromkeys(item.tags)),
        # The producer's free-text name has no column of its own: it travels in the metadata.
        metadata={**item.metadata, "source": item.source},
        predicted_at=item.predicted_at or now,
    )
