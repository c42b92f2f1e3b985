"""Jobs with their runs and logs; processings and launching one on a model version."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query

from schemas.api.common import Page as PageOf
from schemas.api.jobs import (
    JobOut,
    JobRunOut,
    LaunchedBy,
    LogLineOut,
    LogsOut,
    ProcessingCreate,
    ProcessingLaunch,
    ProcessingOut,
)
from schemas.events import JobKind
from schemas.limits import INT64_MAX
from schemas.topics import Topic
from schemas.vocabulary import RunStatus, TargetType
from services.common.db.repositories import deletions, jobs, processings, projects, registry
from services.common.db.repositories.base import NotFound, transaction
from services.common.domain.job_events import job_requested
from services.common.domain.jobs import Job, JobRun
from services.common.http import ApiError

from ..context import AdminKey, Ctx, Page, ReadKey, WriteKey
from ..errors import WRITE_ERRORS, not_found
from ..outbox import change
from ..rules import missing_parameters, unknown_parameters

router = APIRouter(prefix="/v1", tags=["jobs"])

MAX_LOG_LINES = 1000
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED)


KeyNames = dict[UUID, str]


def run_out(run: JobRun, key_names: KeyNames) -> JobRunOut:
    duration = (
        (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else None
    )
    key_id = run.launched_by_key_id
    launched_by = LaunchedBy(key_id=key_id, key_name=key_names.get(key_id, "")) if key_id else None
    return JobRunOut.model_validate(run.model_dump() | {"duration_s": duration, "launched_by": launched_by})


def job_out(job: Job, latest: JobRun | None, key_names: KeyNames, runs: list[JobRun] | None = None) -> JobOut:
    return JobOut.model_validate(
        job.model_dump()
        | {
            "latest_run": run_out(latest, key_names) if latest else None,
            "runs": [run_out(r, key_names) for r in runs] if runs is not None else None,
        }
    )


async def _key_names(ctx: Ctx, project_id: UUID) -> KeyNames:
    """The names of the project's API keys (revoked ones too: they launched runs before)."""
    return {k.id: k.name for k in await projects.list_api_keys(ctx.pool, project_id)}


@router.get("/jobs")
async def list_jobs(ctx: Ctx, key: ReadKey, page: Page, kind: JobKind | None = None) -> PageOf[JobOut]:
    found, total = await jobs.list_jobs(
        ctx.pool, key.project_id, kind=kind, limit=page.limit, offset=page.offset
    )
    names = await _key_names(ctx, key.project_id)
    return PageOf[JobOut](items=[job_out(job, latest, names) for job, latest in found], total=total)


async def _job(ctx: Ctx, project_id: UUID, job_id: UUID) -> tuple[Job, list[JobRun]]:
    job = await jobs.get_job(ctx.pool, project_id, job_id)
    if job is None:
        raise not_found("path.job_id", "job")
    return job, await jobs.list_runs(ctx.pool, project_id, job_id)


@router.get("/jobs/{job_id}")
async def get_job(ctx: Ctx, key: ReadKey, job_id: UUID) -> JobOut:
    job, runs = await _job(ctx, key.project_id, job_id)
    return job_out(job, runs[-1] if runs else None, await _key_names(ctx, key.project_id), runs)


@router.get("/jobs/{job_id}/logs")
async def get_logs(
    ctx: Ctx,
    key: ReadKey,
    job_id: UUID,
    run_id: Annotated[UUID | None, Query(description="Default: the latest run.")] = None,
    after: Annotated[
        int, Query(ge=-1, le=INT64_MAX, description="Lines after this number (a follower's last one).")
    ] = -1,
) -> LogsOut:
    _, runs = await _job(ctx, key.project_id, job_id)
    chosen = next((r for r in runs if r.id == run_id), None) if run_id else (runs[-1] if runs else None)
    if chosen is None:
        raise not_found("query.run_id", "run of this job")
    lines = await jobs.read_logs(ctx.pool, key.project_id, chosen.id, after=after, limit=MAX_LOG_LINES)
    return LogsOut(
        run_id=chosen.id,
        lines=[LogLineOut(number=line.sequence, text=line.line) for line in lines],
        finished=chosen.status in FINISHED and len(lines) < MAX_LOG_LINES,
    )


@router.post("/jobs/{job_id}/rerun", status_code=201, responses=WRITE_ERRORS)
async def rerun(ctx: Ctx, key: WriteKey, job_id: UUID) -> JobRunOut:
    """A new run of a finished job, requested again on `jobs`; 409 while a run is pending or running."""
    async with change(ctx) as current:
        run = await jobs.rerun(current.conn, key.project_id, job_id, launched_by_key_id=key.id)
        job = await jobs.get_job(current.conn, key.project_id, job_id)
        assert job is not None  # rerun found it
        current.publish(Topic.JOBS, job_requested(job, run))
    return run_out(run, {key.id: key.name})


@router.post("/processings", status_code=201, responses=WRITE_ERRORS)
async def create_processing(ctx: Ctx, key: AdminKey, body: ProcessingCreate) -> ProcessingOut:
    """Registering a processing is registering code the platform's machines run: the admin scope."""
    try:
        processing = await processings.create_processing(
            ctx.pool,
            key.project_id,
            body.name,
            description=body.description,
            command=body.command,
            image=body.image,
            parameters_schema=body.parameters_schema,
            created_by_key_id=key.id,
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(409, "body.name", "a processing with this name already exists") from None
    return ProcessingOut.model_validate(processing)


@router.get("/processings")
async def list_processings(ctx: Ctx, key: ReadKey, page: Page) -> PageOf[ProcessingOut]:
    found, total = await processings.list_processings(
        ctx.pool, key.project_id, limit=page.limit, offset=page.offset
    )
    return PageOf[ProcessingOut](items=[ProcessingOut.model_validate(p) for p in found], total=total)


@router.delete("/processings/{processing_id}", status_code=204, responses=WRITE_ERRORS)
async def delete_processing(ctx: Ctx, key: WriteKey, processing_id: UUID) -> None:
    """409 while jobs ran it: they keep pointing at it for their history."""
    async with transaction(ctx.pool) as conn:
        try:
            await deletions.delete_processing(conn, key.project_id, processing_id)
        except NotFound:
            raise not_found("path.processing_id", "processing") from None


@router.post("/model-versions/{model_version_id}/processings", status_code=201, responses=WRITE_ERRORS)
async def launch_processing(
    ctx: Ctx, key: WriteKey, model_version_id: UUID, body: ProcessingLaunch
) -> JobOut:
    """A `processing` job on the model version, requested on `jobs`."""
    if await registry.get_model_version(ctx.pool, key.project_id, model_version_id) is None:
        raise not_found("path.model_version_id", "model version")
    processing = await processings.get_processing(ctx.pool, key.project_id, body.processing_id)
    if processing is None:
        raise not_found("body.processing_id", "processing")
    if unknown := unknown_parameters(processing.parameters_schema, body.parameters):
        raise ApiError(422, f"body.parameters.{unknown[0]}", "not a parameter of this processing")
    if missing := missing_parameters(processing.parameters_schema, body.parameters):
        raise ApiError(422, f"body.parameters.{missing[0]}", "required by this processing")
    async with change(ctx) as current:
        job, run, _ = await jobs.create_job(
            current.conn,
            key.project_id,
            JobKind.PROCESSING,
            target_type=TargetType.MODEL_VERSION,
            target_id=model_version_id,
            parameters=body.parameters,
            processing_id=processing.id,
            launched_by_key_id=key.id,
        )
        current.publish(Topic.JOBS, job_requested(job, run))
    return job_out(job, run, {key.id: key.name})
