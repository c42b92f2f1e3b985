"""What happens to a finished training (pure): whether its experiment can be exported, the version it
becomes, and what the continuous-deployment policy does with it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

from schemas.events import DeploymentChange
from schemas.model_version import LABELS_FILE, MODEL_FILE, version_names
from schemas.vocabulary import DeploymentPolicy
from services.common.domain.experiments import Artifact


class Outcome(StrEnum):
    """The `outcome` label of cvloop_pipeline_exports_total."""

    CHAMPION = "champion"
    SHADOW = "shadow"
    MANUAL = "manual"  # exported, deployed by no one (policy manual, or continuous deployment off)
    UNSERVABLE = "unservable"  # exported, not deployed: its served deployment could not call it
    FAILED = "failed"  # training failed, or its experiment could not be exported


def rollout(
    policy: DeploymentPolicy, active: bool, unservable: bool = False
) -> tuple[Outcome, DeploymentChange | None]:
    """The outcome of an exported version and the deployment change it makes (None: none); `unservable`:
    the deployment is served and serving could not call the version (the check registration makes)."""
    if not active or policy is DeploymentPolicy.MANUAL:
        return Outcome.MANUAL, None
    if unservable:
        return Outcome.UNSERVABLE, None
    if policy is DeploymentPolicy.DEPLOY_CHAMPION:
        return Outcome.CHAMPION, DeploymentChange.CHAMPION_SET
    return Outcome.SHADOW, DeploymentChange.SHADOW_SET


def missing_artifacts(artifacts: list[Artifact]) -> list[str]:
    """The artifacts an export needs that the experiment lacks."""
    names = {a.name for a in artifacts}
    return [name for name in (MODEL_FILE, LABELS_FILE) if name not in names]


def labels_problem(labels_json: bytes, labelmap: list[str] | None) -> str | None:
    """Why the trained model's labels.json does not fit the base version's labelmap, which the new version
    inherits (a class index means the same label in both), or None."""
    try:
        labels = json.loads(labels_json)
    except ValueError as exc:
        return f"{LABELS_FILE} is not JSON: {exc}"
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        return f"{LABELS_FILE} is not a list of labels"
    if labelmap is not None and labels != labelmap:
        return f"{LABELS_FILE} ({', '.join(labels)}) differs from the base labelmap ({', '.join(labelmap)})"
    return None


def exported_version_names(cycle: int, created_at: datetime, experiment_id: UUID) -> tuple[str, str]:
    """The new version's name: the cycle and the UTC time its experiment was created; and, should that
    one be taken (made by hand, or by another deployment's pipeline on the same model in the same
    second), the same with the experiment's id."""
    return version_names(f"ct{cycle}-{created_at.astimezone(UTC):%Y%m%dT%H%M%SZ}", experiment_id)
