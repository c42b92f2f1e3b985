"""Every event cvloop publishes, grouped by the topic that carries it (see `topics.py`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .envelope import Envelope, Event
from .limits import INT32_MAX, MAX_JSON_BYTES, Finite, JsonObject, Line, json_object
from .object_keys import IMAGE_CONTENT_TYPES, parse_key, validate_image_key
from .predictions import DetectionType, Prediction
from .triggers import TriggerFired
from .vocabulary import GateMetric, GateOutcome, GateReason

Tag = Annotated[Line, Field(min_length=1, max_length=128)]
MAX_TAGS = 64
LatencyMs = Annotated[Finite, Field(ge=0.0, description="Inference time in milliseconds.")]
Side = Annotated[int, Field(gt=0, le=INT32_MAX, description="Pixels.")]
SourceName = Annotated[Line, Field(max_length=128, description="Free text naming the producer.")]
LoggedMetadata = json_object(MAX_JSON_BYTES + 1024)
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- predictions.raw and predictions -------------------------------------------------------------


class PredictionSource(StrEnum):
    SERVING = "serving"  # cvloop's own gateway
    MONITOR_API = "monitor_api"  # POST to ingest's monitor endpoint
    KAFKA = "kafka"  # an external producer on predictions.raw


ImageKey = Annotated[
    str,
    AfterValidator(validate_image_key),
    Field(description="Content-addressed key of the image in the object store: images/<sha[:2]>/<sha>.<ext>"),
]


class ImageRef(_Part):
    object_key: ImageKey
    sha256: Sha256
    width: Side
    height: Side
    content_type: Literal[IMAGE_CONTENT_TYPES]  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _key_names_these_bytes(self) -> Self:
        if parse_key(self.object_key).sha256 != self.sha256:
            raise ValueError("object_key names other bytes than sha256")
        return self


class RoleResult(_Part):
    """What one model (champion or shadow) answered for the image."""

    model_version_id: UUID | None = Field(None, description="Unknown for monitoring-only producers.")
    prediction: Prediction
    latency_ms: LatencyMs


def _check_shapes_inside(width: int, height: int, **results: RoleResult | None) -> None:
    for role, result in results.items():
        if result is not None:
            try:
                result.prediction.check_inside(width, height)
            except ValueError as exc:
                raise ValueError(f"{role}.prediction.{exc}") from None


class RawPrediction(Event):
    """What an external producer publishes to `predictions.raw`; ingest validates and stores it.

    The image travels either as an object key already in the store or base64-encoded in `image_base64`.
    """

    type: Literal["prediction.raw"] = "prediction.raw"
    image_object_key: ImageKey | None = None
    image_base64: str | None = Field(None, description="The image file (JPEG, PNG or WebP), base64-encoded.")
    width: Side
    height: Side
    champion: RoleResult
    shadow: RoleResult | None = None
    source: SourceName = "kafka"
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: JsonObject = Field(default_factory=dict)
    predicted_at: datetime | None = Field(
        None, description="When the model answered; defaults to occurred_at."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.image_object_key is None) == (self.image_base64 is None):
            raise ValueError("exactly one of image_object_key and image_base64 must be given")
        _check_shapes_inside(self.width, self.height, champion=self.champion, shadow=self.shadow)
        return self


class PredictionLogged(Event):
    """A predicted asset: the image, the champion's answer and the shadow's, and the image features."""

    type: Literal["prediction.logged"] = "prediction.logged"
    prediction_id: UUID
    detection_type: DetectionType
    image: ImageRef
    champion: RoleResult
    shadow: RoleResult | None = None
    shadow_error: str | None = Field(None, description="Why the shadow gave no answer, when it failed.")
    features: dict[str, float] = Field(
        default_factory=dict, description="Image features from the shared feature function, by name."
    )
    image_dhash: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{16}$",
        description="The image's difference hash (schemas/features.py), when the pixels were at hand: "
        "the review queue shows near-duplicates once.",
    )
    source: PredictionSource
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    # The client's metadata and the producer's name ingest adds to it.
    metadata: LoggedMetadata = Field(default_factory=dict)  # type: ignore[valid-type]
    predicted_at: datetime

    @model_validator(mode="after")
    def _check(self) -> Self:
        for role, result in (("champion", self.champion), ("shadow", self.shadow)):
            if result is not None and result.prediction.type != self.detection_type:
                raise ValueError(
                    f"{role}.prediction.type is {result.prediction.type} but the deployment's detection "
                    f"type is {self.detection_type}"
                )
        _check_shapes_inside(self.image.width, self.image.height, champion=self.champion, shadow=self.shadow)
        return self


# --- scores ----------------------------------------------------------------------------------------


class OutlierScored(Event):
    type: Literal["score.outlier"] = "score.outlier"
    prediction_id: UUID
    reference_id: UUID = Field(description="The training-data reference the score is calibrated against.")
    score: float = Field(
        ge=0.0, le=1.0, description="Fraction of training images less outlying than this one."
    )


class MultipleTestingCorrection(StrEnum):
    BONFERRONI = "bonferroni"
    BENJAMINI_HOCHBERG = "benjamini-hochberg"


class FeatureDrift(_Part):
    feature: str
    statistic: float = Field(ge=0.0, le=1.0, description="Two-sample Kolmogorov-Smirnov statistic.")
    p_value: float = Field(ge=0.0, le=1.0)
    drifted: bool = Field(description="The decision after the multiple-testing correction.")


class DriftReported(Event):
    type: Literal["score.drift"] = "score.drift"
    reference_id: UUID
    window_start: datetime
    window_end: datetime
    window_size: int = Field(gt=0)
    reference_size: int = Field(gt=0)
    correction: MultipleTestingCorrection
    alpha: float = Field(gt=0.0, lt=1.0)
    features: list[FeatureDrift] = Field(min_length=1)
    drift_detected: bool


# --- reviews and feedback -------------------------------------------------------------------------


class PredictionReviewed(Event):
    """A person's corrected answer for a prediction: the ground truth quality is measured against."""

    type: Literal["prediction.reviewed"] = "prediction.reviewed"
    prediction_id: UUID
    review: Prediction
    reviewed_by: str = Field(max_length=256)


class ShadowReplayed(Event):
    """A new shadow's answers recorded on the deployment's latest reviewed predictions (serving's replay
    before going live): on `reviews`, because like a review it changes the paired evidence, so the
    promotion gate and the quality measures look at the deployment again without waiting for one."""

    type: Literal["shadow.replayed"] = "shadow.replayed"
    shadow_model_version_id: UUID
    selected: int = Field(ge=0, description="Reviewed predictions the replay ran the shadow over.")


class AssetSubmitted(Event):
    """A reviewed prediction added as an asset to one of the deployment's feedback-loop dataset versions."""

    type: Literal["asset.submitted"] = "asset.submitted"
    prediction_id: UUID
    dataset_version_id: UUID
    asset_id: UUID


# --- training -------------------------------------------------------------------------------------


def training_request_prefix(deployment_id: UUID) -> str:
    """What every training request id of the deployment starts with."""
    return f"{deployment_id}:"


def training_request_id(deployment_id: UUID, cycle: int) -> str:
    """The pipeline's request id for a deployment's cycle: `<deployment id>:<cycle>`, the same however
    often the decision is replayed."""
    return f"{training_request_prefix(deployment_id)}{cycle}"


def parse_training_request_id(value: str) -> tuple[UUID, int]:
    """(deployment id, cycle) of a training request id; ValueError when it is not one."""
    deployment, _, cycle = value.rpartition(":")
    if not deployment or not cycle.isdigit() or int(cycle) < 1:
        raise ValueError(f"request_id {value!r} is not '<deployment_id>:<cycle>'")
    return UUID(deployment), int(cycle)


class TrainingRequested(Event):
    type: Literal["training.requested"] = "training.requested"
    request_id: str = Field(
        description="Deterministic: the deployment and its cycle number (`training_request_id`), so a "
        "replay is a no-op."
    )
    cycle: int = Field(ge=1)
    submitted_count: int = Field(ge=0, description="Submissions counted in this cycle when it triggered.")
    trigger: TriggerFired | None = Field(
        None, description="The rule that fired and its figures (None from a pipeline before trigger rules)."
    )


class TrainingStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TrainingFinished(Event):
    type: Literal["training.finished"] = "training.finished"
    request_id: str
    experiment_id: UUID
    job_run_id: UUID
    status: TrainingStatus
    reason: str | None = Field(None, description="Why it failed.")


# --- deployments ----------------------------------------------------------------------------------


class DeploymentKind(StrEnum):
    SERVED = "served"
    MONITORING_ONLY = "monitoring_only"


class DeploymentChange(StrEnum):
    CREATED = "created"
    CHAMPION_SET = "champion_set"
    SHADOW_SET = "shadow_set"
    SHADOW_REMOVED = "shadow_removed"
    SHADOW_PROMOTED = "shadow_promoted"
    ROLLED_BACK = "rolled_back"  # the promotion gate undid a promotion
    GATE_DECIDED = "gate_decided"  # the promotion gate decided to change nothing (routing unchanged)
    SETTINGS_CHANGED = "settings_changed"
    DELETED = "deleted"


class GateDecision(BaseModel):
    """A promotion-gate decision and the figures it rests on: the shadow against the champion on the
    reviewed predictions both answered (after a promotion the shadow is the previous champion)."""

    model_config = ConfigDict(frozen=True)

    outcome: GateOutcome
    reason: GateReason
    message: str = Field(max_length=1000, description="Why, in words, with the figures.")
    metric: GateMetric | None = None
    pairs: int = Field(ge=0, description="Paired reviewed predictions compared.")
    champion_value: Finite | None = None
    shadow_value: Finite | None = None
    p_value: Finite | None = Field(
        None, description="One-sided: McNemar exact, or a paired bootstrap for box or mask AP."
    )
    level: Finite = Field(gt=0.0, lt=1.0)
    shadow_latency_p95_ms: Finite | None = None


class DeploymentUpdated(Event):
    """The deployment's whole routing state after a change: the topic is compacted, so the latest event
    per deployment is all a reader starting from scratch needs."""

    type: Literal["deployment.updated"] = "deployment.updated"
    change: DeploymentChange
    kind: DeploymentKind
    detection_type: DetectionType
    champion_model_version_id: UUID | None
    shadow_model_version_id: UUID | None = None
    confidence_threshold: float = Field(ge=0.0, le=1.0)
    reference_id: UUID | None = Field(None, description="The training-data reference, once ready.")
    gate: GateDecision | None = Field(None, description="The promotion gate's decision that made the change.")


# --- jobs -----------------------------------------------------------------------------------------


class JobKind(StrEnum):
    TRAINING = "training"
    PROCESSING = "processing"
    REFERENCE = "reference"


# Job events and TrainingFinished are keyed by deployment; one of a job on no deployment (a processing on a
# model version, a training started by hand) by this nil id, so such jobs share a partition and stay in order.
NO_DEPLOYMENT = UUID(int=0)


class JobRequested(Event):
    type: Literal["job.requested"] = "job.requested"
    job_id: UUID
    run_id: UUID
    kind: JobKind
    model_version_id: UUID | None = None
    experiment_id: UUID | None = None
    dataset_version_id: UUID | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


# --- api-keys -----------------------------------------------------------------------------------


class ApiKeyChange(StrEnum):
    REVOKED = "revoked"
    SCOPES_CHANGED = "scopes_changed"


class ApiKeyChanged(Envelope):
    """An API key revoked or given other scopes: a service that trusts live keys for a while (serving,
    ingest) forgets this one, so its next request is checked against Postgres again."""

    type: Literal["api_key.changed"] = "api_key.changed"
    project_id: UUID
    api_key_id: UUID
    change: ApiKeyChange

    @property
    def key(self) -> bytes:
        """The Kafka key: one project's key changes stay ordered."""
        return str(self.project_id).encode()
