"""Deployments and their pipeline settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self
from uuid import UUID

from pydantic import Field, model_validator

from schemas.events import DeploymentKind, GateDecision
from schemas.limits import Int32
from schemas.predictions import DetectionType
from schemas.triggers import TriggerFired, TriggerPolicy
from schemas.vocabulary import DeploymentPolicy, QualityEstimator, ReferenceStatus, ReplayStatus

from .common import Alias, Answer, Body, JsonObject, Name


class DeploymentCreate(Body):
    name: Name
    kind: DeploymentKind
    model_version_id: UUID = Field(description="The champion; its detection type is the deployment's.")
    confidence_threshold: float = Field(0.0, ge=0.0, le=1.0)


class ModelVersionChoice(Body):
    model_version_id: UUID


class ThresholdUpdate(Body):
    confidence_threshold: float = Field(ge=0.0, le=1.0)


class ReviewQueueSettings(Body):
    """How a deployment's TO_REVIEW queue is ordered: the acquisition score is the weighted mean of the
    components a prediction has (uncertainty always, outlier score once scored, disagreement with a
    shadow), so a missing one does not sink a prediction; an audit slice is mixed in at random."""

    uncertainty_weight: float = Field(
        1.0,
        ge=0.0,
        le=100.0,
        description="Champion uncertainty: 1 - (top-1 minus top-2 score) for classification; for "
        "detection and segmentation, the share of shapes scored within `detection_band` of the threshold.",
    )
    outlier_weight: float = Field(1.0, ge=0.0, le=100.0, description="The outlier score.")
    disagreement_weight: float = Field(
        1.0,
        ge=0.0,
        le=100.0,
        description="1 - the shadow's agreement with the champion (top-1 match, or mean IoU of matched "
        "boxes).",
    )
    detection_band: float = Field(
        0.1, gt=0.0, le=1.0, description="How near the threshold a shape is unsure."
    )
    audit_fraction: float = Field(
        0.05,
        ge=0.0,
        le=0.5,
        description="Share of predictions drawn at random (by prediction id) into the audit slice, placed in "
        "the queue independently of their content; the unbiased quality figures are computed on it.",
    )

    @model_validator(mode="after")
    def _some_weight(self) -> Self:
        if self.uncertainty_weight + self.outlier_weight + self.disagreement_weight == 0:
            raise ValueError("at least one weight must be above 0")
        return self


class TrainingDataRequest(Body):
    dataset_version_id: UUID


class TrainingDataOut(Answer):
    dataset_version_id: UUID | None
    status: ReferenceStatus | None
    reason: str | None
    job_id: UUID | None


class ContinuousTrainingRequest(Body):
    project_id: UUID | None = Field(None, description="Must be this key's project; default: it.")
    dataset_versions: dict[Alias, UUID] = Field(default_factory=dict, description="Alias to dataset version.")
    training_parameters: JsonObject | None = Field(None, description="Default: the champion's.")
    threshold: Int32 | None = Field(None, gt=0, description="Submitted assets that start a training.")
    policy: TriggerPolicy = Field(
        default_factory=TriggerPolicy,
        description="Rules besides the threshold (drift, outlier rate, reviewed quality), the cooldown and "
        "the submitted assets any rule needs; any rule that holds requests a training.",
    )
    active: bool = False

    @model_validator(mode="after")
    def _active_needs_a_rule(self) -> Self:
        if self.active and self.threshold is None and not self.policy.has_data_rule:
            raise ValueError("threshold or a policy rule is required when active is true")
        return self


class ContinuousTrainingOut(Answer):
    project_id: UUID | None
    dataset_versions: dict[str, UUID]
    training_parameters: dict[str, Any]
    threshold: int | None
    policy: TriggerPolicy
    active: bool
    submitted_since_training: int = Field(
        description="SUBMITTED assets submitted since the deployment's latest pipeline training was "
        "requested (all of them before the first)."
    )
    last_request_id: str | None = Field(
        None, description="The latest pipeline training request (`<deployment id>:<cycle>`), if any."
    )
    last_trigger: TriggerFired | None = Field(
        None, description="The rule that requested it and the figures that made it fire."
    )


class ContinuousDeploymentRequest(Body):
    policy: DeploymentPolicy
    active: bool = False


class ContinuousDeploymentOut(Answer):
    policy: DeploymentPolicy
    active: bool


class ActiveToggle(Body):
    active: bool


class FeedbackLoopOut(Answer):
    dataset_version_ids: list[UUID]


class DeploymentOut(Answer):
    id: UUID
    name: str
    kind: DeploymentKind
    detection_type: DetectionType
    champion_model_version_id: UUID | None
    shadow_model_version_id: UUID | None
    confidence_threshold: float
    training_data: TrainingDataOut
    feedback_loop: FeedbackLoopOut
    continuous_training: ContinuousTrainingOut
    continuous_deployment: ContinuousDeploymentOut
    created_at: datetime
    updated_at: datetime


class RoleFigures(Answer):
    model_version_id: UUID
    predictions: int = Field(description="Predictions of the window this role answered.")
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    quality: dict[str, float] = Field(
        description="Against the reviews in the window: accuracy (classification) or ap, ap50, ar "
        "(detection; segmentation: of the polygons' boxes, with mask_ap, mask_ap50, mask_ar of their "
        "masks), and `reviewed`, how many reviews that is; empty without reviews."
    )


class ComparisonOut(Answer):
    window: int = Field(description="The latest predictions of the current champion looked at.")
    champion: RoleFigures | None = Field(description="None: the deployment has no champion.")
    shadow: RoleFigures | None = Field(description="None: the deployment has no shadow.")
    agreement: float | None = Field(
        description="Mean agreement of the shadow with the champion where both answered: top-1 match "
        "(classification) or mean IoU of matched boxes (detection)."
    )


class ReviewQualityOut(Answer):
    estimator: QualityEstimator = Field(
        QualityEstimator.AUDIT_SLICE,
        description="The figures are computed on the reviewed predictions of the random audit slice only: "
        "the slice is drawn by prediction id and placed in the queue regardless of content, so it is a "
        "uniform sample of production (inverse-propensity weights would need the chance that a person "
        "reaches each queue position, which nobody knows).",
    )
    audit_fraction: float
    window: int = Field(description="The latest reviewed predictions looked at.")
    reviewed: int = Field(description="Reviewed predictions in the window.")
    audit_reviewed: int = Field(description="Of those, in the audit slice: what the figures rest on.")
    champion: dict[str, float] = Field(
        description="accuracy (classification) or ap, ap50, ar (detection), and `reviewed`, on the audit "
        "slice; empty without audited reviews."
    )
    shadow: dict[str, float] = Field(description="The same for the shadow's answers, where it answered.")
    champion_all_reviews: dict[str, float] = Field(
        description="The champion's figures over every review in the window, for contrast: biased toward "
        "the hard images the queue puts first."
    )


class GateDecisionOut(Answer):
    """One promotion-gate decision (continuous-deployment policy `shadow_then_promote`)."""

    id: UUID = Field(description="The id of the DeploymentUpdated event that published it.")
    champion_model_version_id: UUID = Field(description="The champion it compared, before it acted.")
    shadow_model_version_id: UUID = Field(
        description="The shadow it compared: the candidate, or after a promotion the previous champion."
    )
    decision: GateDecision
    decided_at: datetime


class ShadowReplayOut(Answer):
    """A shadow replay: when a version becomes the shadow of a served deployment, serving runs it over
    the deployment's latest reviewed images and records its answers as shadow predictions, so the
    comparison and the promotion gate have paired evidence without new traffic."""

    deployment_id: UUID
    shadow_model_version_id: UUID = Field(description="The version replayed.")
    status: ReplayStatus
    selected: int = Field(
        description="Reviewed images chosen: the latest the champion answered, at most "
        "CVLOOP_SERVING_REPLAY_REVIEWS."
    )
    replayed: int = Field(description="Shadow answers recorded so far.")
    failed: int = Field(
        description="Images the shadow could not answer (missing, undecodable, the model failing)."
    )
    error: str | None = Field(
        description="Why a failed replay stopped; it is resumed at serving's next "
        "start or the next time a shadow is set."
    )
    started_at: datetime
    finished_at: datetime | None
