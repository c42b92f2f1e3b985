"""A deployment, its continuous-training settings, its training-data reference and the answers its
roles gave."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from schemas.api.deployments import ReviewQueueSettings
from schemas.events import DeploymentChange, DeploymentKind, DeploymentUpdated, GateDecision
from schemas.predictions import DetectionType
from schemas.triggers import TriggerPolicy
from schemas.vocabulary import DeploymentPolicy, ReferenceStatus, ReplayStatus


class ContinuousTraining(BaseModel):
    model_config = ConfigDict(frozen=True)

    project_id: UUID | None = Field(None, description="Where the experiment is created; None: here.")
    dataset_versions: dict[str, UUID] = Field(default_factory=dict, description="Alias to dataset version.")
    parameters: dict[str, Any] = Field(default_factory=dict)
    trigger_threshold: int | None = Field(None, gt=0, description="Submitted assets that start a training.")
    trigger_policy: TriggerPolicy = Field(
        default_factory=TriggerPolicy, description="The data rules besides the threshold, cooldown, minimum."
    )
    active: bool = False

    @property
    def has_trigger(self) -> bool:
        """Some rule can request a training (turning it on without one would train never)."""
        return self.trigger_threshold is not None or self.trigger_policy.has_data_rule


class Deployment(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    project_id: UUID
    name: str
    kind: DeploymentKind
    detection_type: DetectionType
    champion_model_version_id: UUID | None
    shadow_model_version_id: UUID | None
    confidence_threshold: float
    training_dataset_version_id: UUID | None
    reference_status: ReferenceStatus | None
    reference_reason: str | None
    reference_id: UUID | None
    feedback_dataset_version_ids: list[UUID]
    continuous_training: ContinuousTraining
    cd_policy: DeploymentPolicy
    cd_active: bool
    review_queue: ReviewQueueSettings = Field(default_factory=ReviewQueueSettings)
    created_at: datetime
    updated_at: datetime
    # The champion a gate promotion replaced; watched for a rollback while it is still the shadow.
    gate_watched_model_version_id: UUID | None = None

    @property
    def watching(self) -> bool:
        return self.shadow_model_version_id is not None and (
            self.shadow_model_version_id == self.gate_watched_model_version_id
        )

    def updated_event(
        self, change: DeploymentChange, gate: GateDecision | None = None, event_id: UUID | None = None
    ) -> DeploymentUpdated:
        """The deployment's whole routing state after `change`, as every writer publishes it."""
        return DeploymentUpdated(
            **({"event_id": event_id} if event_id else {}),
            deployment_id=self.id,
            change=change,
            kind=self.kind,
            detection_type=self.detection_type,
            champion_model_version_id=self.champion_model_version_id,
            shadow_model_version_id=self.shadow_model_version_id,
            confidence_threshold=self.confidence_threshold,
            reference_id=self.reference_id,
            gate=gate,
        )


REFERENCE_NAMESPACE = UUID("9d3c2a41-5b7e-4f08-8c6d-2e1f0a9b7c35")


def reference_id(run_id: UUID) -> UUID:
    """A reference's id derives from the run that made it: a replayed finish stores it once."""
    return uuid5(REFERENCE_NAMESPACE, str(run_id))


class TrainingReference(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    project_id: UUID
    deployment_id: UUID
    dataset_version_id: UUID
    job_run_id: UUID
    object_key: str
    detector: str
    feature_names: list[str]
    training_size: int
    sample_size: int
    created_at: datetime | None = None  # set by the database when stored: when it became ready


@dataclass(frozen=True)
class RoleAnswers:
    """One predicted asset: what the champion and the shadow answered, and its review if any."""

    champion_prediction: dict[str, Any]
    champion_latency_ms: float
    shadow_prediction: dict[str, Any] | None
    shadow_latency_ms: float | None
    review: dict[str, Any] | None


class RecordedGateDecision(BaseModel):
    """A promotion-gate decision as stored: the roles it compared (before it acted) and when."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    champion_model_version_id: UUID
    shadow_model_version_id: UUID
    decision: GateDecision
    decided_at: datetime


class ShadowReplay(BaseModel):
    """A shadow version run over the deployment's latest reviewed images (one per deployment and
    shadow version): how far it got."""

    model_config = ConfigDict(frozen=True)

    deployment_id: UUID
    shadow_model_version_id: UUID
    status: ReplayStatus
    selected: int  # the reviewed images chosen
    replayed: int  # the shadow's answers recorded
    failed: int  # the images the shadow could not answer
    error: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class ReplayImage:
    """A reviewed predicted asset the shadow has not answered yet: its image and the champion's answer."""

    prediction_id: UUID
    image_object_key: str
    champion_prediction: dict[str, Any]
