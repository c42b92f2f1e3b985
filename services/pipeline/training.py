"""A training request becomes its experiment and training job, and the job's JobRequested goes to the
outbox, all in one transaction: a replayed request finds its experiment and changes nothing."""

from __future__ import annotations

from typing import NamedTuple

import asyncpg

from schemas.events import JobKind, TrainingRequested, parse_training_request_id
from schemas.topics import Topic
from schemas.vocabulary import TargetType
from services.common.db.repositories import deployments, experiments, jobs, outbox
from services.common.db.repositories.base import NotFound, transaction
from services.common.domain.experiments import Experiment
from services.common.domain.job_events import job_requested
from services.common.domain.jobs import Job, JobRun

from .requests import experiment_spec


class CreatedTraining(NamedTuple):
    experiment: Experiment
    job: Job
    run: JobRun


async def create_training(pool: asyncpg.Pool, request: TrainingRequested) -> CreatedTraining | None:
    """The request's experiment, job and first run; None when the request already has its experiment.
    NotFound or ValueError when the request cannot be answered (a message error: its deployment is gone,
    has no champion, or names dataset versions that are gone)."""
    deployment_id, _ = parse_training_request_id(request.request_id)
    if deployment_id != request.deployment_id:
        raise ValueError(f"request_id {request.request_id!r} names another deployment than deployment_id")
    async with transaction(pool) as conn:
        if await experiments.requested_experiment(conn, request.request_id) is not None:
            return None
        deployment = await deployments.find_deployment(conn, request.deployment_id)
        if deployment is None:
            raise NotFound(f"deployment {request.deployment_id} does not exist")
        spec = experiment_spec(deployment, request)
        experiment = await experiments.create_experiment(
            conn,
            spec.project_id,
            spec.name,
            base_model_version_id=spec.base_model_version_id,
            parameters=spec.parameters,
            dataset_versions=spec.dataset_versions,
            training_request_id=spec.training_request_id,
            training_trigger=spec.training_trigger,
        )
        job, run, _ = await jobs.create_job(
            conn,
            spec.project_id,
            JobKind.TRAINING,
            target_type=TargetType.EXPERIMENT,
            target_id=experiment.id,
            parameters=experiment.parameters,
            request_id=request.request_id,
        )
        requested = job_requested(
            job, run, deployment_id=deployment.id, base_model_version_id=spec.base_model_version_id
        )
        await outbox.enqueue(conn, [(Topic.JOBS, requested)])
    return CreatedTraining(experiment, job, run)
