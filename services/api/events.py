"""The events the control plane publishes, built from the records a change leaves (pure)."""

from __future__ import annotations

from uuid import UUID

from schemas.events import JobKind, JobRequested
from schemas.vocabulary import TargetType
from services.common.domain.jobs import Job, JobRun

# JobRequested is keyed by deployment; a job on no deployment (a processing on a model version) is keyed
# by this nil id, so such jobs share one partition and stay in request order.
NO_DEPLOYMENT = UUID(int=0)


def job_requested(job: Job, run: JobRun) -> JobRequested:
    """What wakes the job runner to start `run` of `job`."""
    target = {job.target_type: job.target_id}
    parameters = dict(job.parameters)
    dataset_version_id = target.get(TargetType.DATASET_VERSION)
    if job.kind is JobKind.REFERENCE:  # a reference job targets the deployment and names its training data
        dataset_version_id = UUID(str(parameters.pop("dataset_version_id")))
    return JobRequested(
        deployment_id=target.get(TargetType.DEPLOYMENT, NO_DEPLOYMENT),
        job_id=job.id,
        run_id=run.id,
        kind=job.kind,
        model_version_id=target.get(TargetType.MODEL_VERSION),
        experiment_id=target.get(TargetType.EXPERIMENT),
        dataset_version_id=dataset_version_id,
        parameters=parameters,
    )
