"""What a training request becomes (pure): the experiment the deployment's continuous-training settings
describe, with the deployed champion as its base model version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from schemas.events import TrainingRequested
from schemas.triggers import TriggerFired
from services.common.domain.deployments import Deployment

NAME_LIMIT = 128  # experiments.name


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    project_id: UUID
    name: str
    base_model_version_id: UUID
    parameters: dict[str, Any]
    dataset_versions: dict[str, UUID]
    training_request_id: str
    training_trigger: TriggerFired | None


def experiment_name(deployment_name: str, requested_at: datetime, cycle: int) -> str:
    """The deployment's name and the request's UTC time (the cycle keeps two requests within one second
    apart); taken from the event, so a replay names the same experiment."""
    stamp = requested_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tail = f" {stamp} #{cycle}"
    return deployment_name[: NAME_LIMIT - len(tail)] + tail


def experiment_spec(deployment: Deployment, request: TrainingRequested) -> ExperimentSpec:
    """ValueError when the deployment has no champion to fine-tune."""
    if deployment.champion_model_version_id is None:
        raise ValueError(f"deployment {deployment.id} has no champion to train from")
    settings = deployment.continuous_training
    return ExperimentSpec(
        project_id=settings.project_id or deployment.project_id,
        name=experiment_name(deployment.name, request.occurred_at, request.cycle),
        base_model_version_id=deployment.champion_model_version_id,
        parameters=dict(settings.parameters),
        dataset_versions=dict(settings.dataset_versions),
        training_request_id=request.request_id,
        training_trigger=request.trigger,
    )
