"""The event that asks the job runner to start a job's run, built from the records the request leaves
(pure): shared by the api's job and pipeline routes and the pipeline's training requests."""

from __future__ import annotations

from uuid import UUID

from schemas.events import NO_DEPLOYMENT, JobKind, JobRequested
from schemas.vocabulary import TargetType
from services.common.domain.jobs import Job, JobRun


def job_requested(
    job: Job, run: JobRun, *, deployment_id: UUID | None = None, base_model_version_id: UUID | None = None
) -> JobRequested:
    """What wakes the job runner to start `run` of `job`, keyed by the deployment it targets, else by
    `deployment_id` (the one a pipeline training is for); a training names the version it starts from
    when given."""
    target = {job.target_type: job.target_id}
    parameters = dict(job.parameters)
    dataset_version_id = target.get(TargetType.DATASET_VERSION)
    if job.kind is JobKind.REFERENCE:  # a reference job targets the deployment and names its training data
        dataset_version_id = UUID(str(parameters.pop("dataset_version_id")))
    return JobRequested(
        deployment_id=target.get(TargetType.DEPLOYMENT, deployment_id or NO_DEPLOYMENT),
        job_id=job.id,
        run_id=run.id,
        kind=job.kind,
        model_version_id=target.get(TargetType.MODEL_VERSION, base_model_version_id),
        experiment_id=target.get(TargetType.EXPERIMENT),
        dataset_version_id=dataset_version_id,
        parameters=parameters,
    )
