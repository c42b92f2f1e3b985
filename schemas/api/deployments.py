"""Deployments and their pipeline settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self
from uuid import UUID

from pydantic import Field, model_validator

from schemas.events import DeploymentKind
from schemas.limits import Int32
from schemas.predictions import DetectionType
from schemas.triggers import TriggerFired, TriggerPolicy
from schemas.vocabulary import DeploymentPolicy, ReferenceStatus

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
        "(detection), and `reviewed`, how many reviews that is; empty without reviews."
    )


class ComparisonOut(Answer):
    window: int = Field(description="The latest predictions of the current champion looked at.")
    champion: RoleFigures | None = Field(description="None: the deployment has no champion.")
    shadow: RoleFigures | None = Field(description="None: the deployment has no shadow.")
    agreement: float | None = Field(
        description="Mean agreement of the shadow with the champion where both answered: top-1 match "
        "(classification) or mean IoU of matched boxes (detection)."
    )
