"""Finishing a run: its status with what it produced, written in one transaction.

- training: the staged-out files become the experiment's artifacts, the experiment's status follows the
  run, and TrainingFinished goes to `training` through the outbox, all with `finish_run`;
- processing: staged-out files become a new model version of the processed one, with `finish_run`;
- reference: the staged-out reference (outputs/reference.bin, described by outputs/reference.json)
  becomes the deployment's reference, unless its training data moved on meanwhile; a failed run marks
  the deployment's reference failed with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from schemas.events import (
    NO_DEPLOYMENT,
    JobKind,
    TrainingFinished,
    TrainingStatus,
    parse_training_request_id,
)
from schemas.job_workspace import REFERENCE_DATA, REFERENCE_SUMMARY, ReferenceSummary
from schemas.model_version import VERSION_LIMIT, version_names
from schemas.topics import Topic
from schemas.vocabulary import ExperimentStatus, RunStatus
from services.common.db.repositories import experiments, jobs, outbox, processings, registry
from services.common.db.repositories.base import NotFound, transaction
from services.common.db.repositories.training_references import fail_reference, make_reference_ready
from services.common.domain.deployments import TrainingReference, reference_id
from services.common.domain.jobs import Job, JobRun, OutputFile
from services.common.domain.registry import ModelFile, ModelVersion, NewModelVersion
from services.common.storage import ObjectStore

from .backends import Exit
from .run_log import RunLog

FINISHED_NAMESPACE = UUID("0b6f3e52-8a1d-4c7e-9f24-6d5a3b8c1e07")  # TrainingFinished ids derive from the run


class OutcomeRefused(Exception):
    """A command that succeeded left nothing usable; the message is the reason the run fails with."""


def request_deployment(request_id: str | None) -> UUID:
    """The deployment a pipeline training request is for: its id is `<deployment id>:<cycle>`."""
    try:
        return parse_training_request_id(request_id)[0] if request_id else NO_DEPLOYMENT
    except ValueError:
        return NO_DEPLOYMENT


def training_finished(job: Job, run: JobRun) -> TrainingFinished | None:
    """The event reporting a finished training run of a pipeline request (None for other trainings)."""
    if job.request_id is None:
        return None
    return TrainingFinished(
        event_id=uuid.uuid5(FINISHED_NAMESPACE, str(run.id)),
        deployment_id=request_deployment(job.request_id),
        request_id=job.request_id,
        experiment_id=job.target_id,
        job_run_id=run.id,
        status=TrainingStatus(run.status.value),
        reason=run.reason,
    )


def processed_version_name(source_version: str, processing_name: str, attempt: int) -> str:
    """`<source version>-<processing>`, `-<attempt>` from the second run on, within the length limit."""
    suffix = f"-{attempt}" if attempt > 1 else ""
    room = VERSION_LIMIT - len(suffix) - 1
    processing_part = processing_name[: max(room // 2, room - len(source_version))]
    source_part = source_version[: room - len(processing_part)]
    return f"{source_part}-{processing_part}{suffix}"


def processed_version(
    source: ModelVersion, processing_name: str, job: Job, run: JobRun, files: list[OutputFile], version: str
) -> NewModelVersion:
    """What a processing's outputs become: the source version's labelmap, detection type, serving IO,
    training parameters, entrypoint and dataset versions, with the new files."""
    return NewModelVersion(
        version=version,
        description=f"{processing_name} of version {source.version} (job {job.id}, run {run.attempt})",
        detection_type=source.detection_type,
        labelmap_id=source.labelmap_id,
        training_parameters=source.training_parameters,
        training_entrypoint=source.training_entrypoint,
        training_image=source.training_image,
        io=source.io,
        files=[ModelFile.model_validate(f.model_dump()) for f in files],
        dataset_versions=source.dataset_versions,
    )


async def _new_version(
    conn: asyncpg.Connection, job: Job, run: JobRun, files: list[OutputFile]
) -> ModelVersion:
    source = await registry.get_model_version(conn, job.project_id, job.target_id)
    processing = job.processing_id and await processings.get_processing(
        conn, job.project_id, job.processing_id
    )
    if source is None or not processing:
        raise OutcomeRefused("the processed model version or the processing no longer exists")
    names = version_names(processed_version_name(source.version, processing.name, run.attempt), run.id)
    new = processed_version(source, processing.name, job, run, files, names[0])
    created = await registry.create_model_version_named(conn, job.project_id, source.model_id, new, names)
    if created is None:
        raise OutcomeRefused(f"model version {names[0]} already exists")
    return created


async def finish(
    pool: asyncpg.Pool, store: ObjectStore, job: Job, run: JobRun, ended: Exit, log: RunLog
) -> JobRun:
    """Finish the run as `ended` says, unless what it left cannot be used; answers the finished run. Its
    last log lines (what it made, how it ended) are written with it."""
    await log.close()
    if ended.succeeded:
        try:
            return await _succeed(pool, store, job, run, log)
        except OutcomeRefused as exc:
            ended = Exit(False, str(exc))
    assert ended.reason is not None
    return await _fail(pool, job, run, ended.reason, log)


def reference_dataset_version(job: Job) -> UUID | None:
    value = job.parameters.get("dataset_version_id")
    return UUID(str(value)) if value is not None else None


async def staged_reference(
    store: ObjectStore, job: Job, run: JobRun, files: list[OutputFile]
) -> TrainingReference:
    """The reference a reference job staged out, as the deployment's reference row."""
    by_name = {file.name: file for file in files}
    data, summary = by_name.get(REFERENCE_DATA), by_name.get(REFERENCE_SUMMARY)
    dataset_version_id = reference_dataset_version(job)
    if data is None or summary is None or dataset_version_id is None:
        raise OutcomeRefused(f"the reference job wrote no outputs/{REFERENCE_DATA} and {REFERENCE_SUMMARY}")
    try:
        described = ReferenceSummary.model_validate_json(
            await asyncio.to_thread(store.get_bytes, summary.object_key)
        )
    except ValidationError as exc:
        raise OutcomeRefused(f"outputs/{REFERENCE_SUMMARY} is not a reference summary: {exc}") from None
    return TrainingReference(
        id=reference_id(run.id),
        project_id=job.project_id,
        deployment_id=job.target_id,
        dataset_version_id=dataset_version_id,
        job_run_id=run.id,
        object_key=data.object_key,
        **described.model_dump(),
    )


async def _succeed(pool: asyncpg.Pool, store: ObjectStore, job: Job, run: JobRun, log: RunLog) -> JobRun:
    staged = await jobs.run_outputs(pool, job.project_id, run.id)
    if staged is None:
        raise OutcomeRefused("the outputs were not staged out (see the stage-out step's log)")
    files = staged
    if job.kind is JobKind.TRAINING and not files:
        raise OutcomeRefused("the training wrote no files to outputs/")
    reference = await staged_reference(store, job, run, files) if job.kind is JobKind.REFERENCE else None
    async with transaction(pool) as conn:
        if job.kind is JobKind.TRAINING:
            for file in files:
                await experiments.add_artifact(conn, job.project_id, job.target_id, **file.model_dump())
            await experiments.set_status(conn, job.project_id, job.target_id, ExperimentStatus.SUCCEEDED)
        elif job.kind is JobKind.PROCESSING and files:
            created = await _new_version(conn, job, run, files)
            await log.write(
                conn, f"created model version {created.version} ({created.id}) of model {created.model_id}"
            )
        elif reference is not None:
            ready = await make_reference_ready(conn, reference)
            await log.write(
                conn,
                "the deployment's reference is ready"
                if ready
                else "the deployment's training data changed meanwhile, or this run's reference is stored: "
                "not used",
            )
        finished = await jobs.finish_run(conn, job.project_id, run.id, RunStatus.SUCCEEDED)
        await log.write(conn, "succeeded")
        await _report(conn, job, finished)
    return finished


async def _fail(pool: asyncpg.Pool, job: Job, run: JobRun, reason: str, log: RunLog) -> JobRun:
    async with transaction(pool) as conn:
        if job.kind is JobKind.TRAINING:
            with contextlib.suppress(NotFound):  # an experiment deleted meanwhile has no status to follow
                await experiments.set_status(conn, job.project_id, job.target_id, ExperimentStatus.FAILED)
        elif job.kind is JobKind.REFERENCE and (dataset_version_id := reference_dataset_version(job)):
            await fail_reference(conn, job.project_id, job.target_id, dataset_version_id, reason)
        finished = await jobs.finish_run(conn, job.project_id, run.id, RunStatus.FAILED, reason=reason)
        await log.write(conn, f"failed: {reason}")
        await _report(conn, job, finished)
    return finished


async def _report(conn: asyncpg.Connection, job: Job, finished: JobRun) -> None:
    if job.kind is JobKind.TRAINING and (event := training_finished(job, finished)) is not None:
        await outbox.enqueue(conn, [(Topic.TRAINING, event)])
