"""A finished training: a succeeded one is exported as a new version of the deployed model and, when
continuous deployment is active, deployed by its policy, the DeploymentUpdated event going to the outbox
in the same transaction (a served deployment only a version serving can call); a failed one deploys
nothing. The version serves with the io its trainer wrote (io.json), else the base version's. A replay
finds the version already exported."""

from __future__ import annotations

from typing import NamedTuple

import asyncpg

from schemas.events import (
    DeploymentChange,
    DeploymentKind,
    TrainingFinished,
    TrainingStatus,
    parse_training_request_id,
)
from schemas.model_version import LABELS_FILE
from schemas.topics import Topic
from services.common.db.repositories import deployments, experiments, outbox, registry
from services.common.db.repositories.base import NotFound, transaction
from services.common.domain.experiments import Experiment
from services.common.domain.model_export import exported_version
from services.common.domain.registry import ModelVersion
from services.common.exported_io import artifact_bytes, artifact_io
from services.common.servable import unservable_because
from services.common.storage import ObjectStore

from .rollout import (
    Outcome,
    exported_version_names,
    labels_problem,
    missing_artifacts,
    rollout,
)


class Exported(NamedTuple):
    outcome: Outcome
    model_version: ModelVersion | None  # None when it failed
    reason: str | None  # why it failed


async def finish_training(
    pool: asyncpg.Pool, store: ObjectStore, finished: TrainingFinished
) -> Exported | None:
    """What the finished training led to; None when there is nothing to do: its experiment was exported
    before (a replay), or it is not a pipeline training (a training job someone started by hand).
    NotFound when the event names a deployment or experiment that does not exist (a message error)."""
    try:
        _, cycle = parse_training_request_id(finished.request_id)
    except ValueError:
        return None
    deployment = await deployments.find_deployment(pool, finished.deployment_id)
    if deployment is None:
        raise NotFound(f"deployment {finished.deployment_id} does not exist")
    project_id = deployment.continuous_training.project_id or deployment.project_id
    experiment = await experiments.get_experiment(pool, project_id, finished.experiment_id)
    if experiment is None:
        raise NotFound(f"experiment {finished.experiment_id} is not in the deployment's training project")
    if experiment.training_request_id != finished.request_id:
        return None
    if finished.status is TrainingStatus.FAILED:
        return Exported(Outcome.FAILED, None, f"training failed: {finished.reason or 'no reason given'}")
    if await registry.exported_from(pool, project_id, experiment.id) is not None:
        return None
    base, problem = await _exportable(pool, store, experiment)
    if base is None:
        return Exported(Outcome.FAILED, None, problem)
    try:
        io = await artifact_io(store, experiment)
    except ValueError as exc:
        return Exported(Outcome.FAILED, None, f"experiment {experiment.id}: {exc}")

    names = exported_version_names(cycle, experiment.created_at, experiment.id)
    description = f"Trained by the pipeline: request {finished.request_id}, experiment {experiment.name}."
    new = exported_version(experiment, base, version=names[0], description=description, io=io)
    # Checked before the transaction (it reads the ONNX file from the object store): a served
    # deployment takes only a version serving can call, as the api's deployment routes do.
    problem = await unservable_because(pool, store, project_id, new)
    async with transaction(pool) as conn:
        locked = await deployments.lock_deployment(conn, deployment.project_id, deployment.id)
        if await registry.exported_from(conn, project_id, experiment.id) is not None:
            return None
        version = await registry.create_model_version_named(conn, project_id, base.model_id, new, names)
        if version is None:
            return Exported(Outcome.FAILED, None, f"model versions {' and '.join(names)} already exist")
        unservable = locked.kind is DeploymentKind.SERVED and problem is not None
        outcome, change = rollout(locked.cd_policy, locked.cd_active, unservable)
        if change is DeploymentChange.CHAMPION_SET:
            locked = await deployments.set_champion(conn, locked.project_id, locked.id, version.id)
        elif change is DeploymentChange.SHADOW_SET:
            locked = await deployments.set_shadow(conn, locked.project_id, locked.id, version.id)
        if change is not None:
            await outbox.enqueue(conn, [(Topic.DEPLOYMENTS, locked.updated_event(change))])
    if outcome is Outcome.UNSERVABLE:
        assert problem is not None  # unservable means a problem was found
        return Exported(outcome, version, f"serving cannot call it ({problem.field}): {problem}")
    return Exported(outcome, version, None)


async def _exportable(
    pool: asyncpg.Pool, store: ObjectStore, experiment: Experiment
) -> tuple[ModelVersion | None, str | None]:
    """The base version the experiment's export inherits from, or None and why it cannot be exported."""
    missing = missing_artifacts(experiment.artifacts)
    if missing:
        return None, f"experiment {experiment.id} has no {' and no '.join(missing)} artifact"
    base = experiment.base_model_version_id and await registry.get_model_version(
        pool, experiment.project_id, experiment.base_model_version_id
    )
    if not base:
        return None, f"experiment {experiment.id} has no base model version to export into"
    labelmap = base.labelmap_id and await registry.get_labelmap(pool, experiment.project_id, base.labelmap_id)
    try:
        labels_json = await artifact_bytes(store, experiment, LABELS_FILE)
    except ValueError as exc:
        return None, str(exc)
    assert labels_json is not None  # missing_artifacts found it among the artifacts
    problem = labels_problem(labels_json, labelmap.labels if labelmap else None)
    return (None, problem) if problem else (base, None)
