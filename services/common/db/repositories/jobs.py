"""Jobs (training, processing, reference) with their runs, one per attempt, and each run's log lines."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from schemas.events import JobKind
from schemas.vocabulary import RunStatus, TargetType
from services.common.domain.jobs import Job, JobRun, LogLine, OutputFile

from .base import Conflict, Db, NotFound, transaction


async def create_job(
    db: Db,
    project_id: UUID,
    kind: JobKind,
    *,
    target_type: TargetType,
    target_id: UUID,
    parameters: dict[str, Any] | None = None,
    processing_id: UUID | None = None,
    request_id: str | None = None,
    launched_by_key_id: UUID | None = None,
) -> tuple[Job, JobRun, bool]:
    """The job and its first run, created together; with a request id seen before, the existing job
    and its latest run, and False. `launched_by_key_id`: the API key that asked for it (None: the
    platform)."""
    async with transaction(db) as conn:
        row = await conn.fetchrow(
            """INSERT INTO jobs
                   (project_id, kind, target_type, target_id, parameters, processing_id, request_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (request_id) DO NOTHING RETURNING *""",
            project_id,
            JobKind(kind).value,
            TargetType(target_type).value,
            target_id,
            parameters or {},
            processing_id,
            request_id,
        )
        if row is None:
            row = await conn.fetchrow(
                "SELECT * FROM jobs WHERE project_id = $1 AND request_id = $2", project_id, request_id
            )
            if row is None:  # the request id belongs to another project's job
                raise Conflict(f"request id {request_id!r} is already used")
            runs = await list_runs(conn, project_id, row["id"])
            return Job.model_validate(dict(row)), runs[-1], False
        run = await _insert_run(conn, project_id, row["id"], attempt=1, launched_by_key_id=launched_by_key_id)
    return Job.model_validate(dict(row)), run, True


async def _insert_run(
    conn: asyncpg.Connection, project_id: UUID, job_id: UUID, *, attempt: int, launched_by_key_id: UUID | None
) -> JobRun:
    row = await conn.fetchrow(
        """INSERT INTO job_runs (project_id, job_id, attempt, launched_by_key_id) VALUES ($1, $2, $3, $4)
           RETURNING *""",
        project_id,
        job_id,
        attempt,
        launched_by_key_id,
    )
    return JobRun.model_validate(dict(row))


async def get_job(db: Db, project_id: UUID, job_id: UUID) -> Job | None:
    row = await db.fetchrow("SELECT * FROM jobs WHERE project_id = $1 AND id = $2", project_id, job_id)
    return Job.model_validate(dict(row)) if row else None


async def list_runs(db: Db, project_id: UUID, job_id: UUID) -> list[JobRun]:
    rows = await db.fetch(
        "SELECT * FROM job_runs WHERE project_id = $1 AND job_id = $2 ORDER BY attempt", project_id, job_id
    )
    return [JobRun.model_validate(dict(r)) for r in rows]


async def rerun(db: Db, project_id: UUID, job_id: UUID, *, launched_by_key_id: UUID | None = None) -> JobRun:
    """A new pending attempt of a job whose runs have all finished."""
    async with transaction(db) as conn:
        job = await conn.fetchrow(
            "SELECT id FROM jobs WHERE project_id = $1 AND id = $2 FOR UPDATE", project_id, job_id
        )
        if job is None:
            raise NotFound(f"job {job_id} is not in this project")
        runs = await list_runs(conn, project_id, job_id)
        if any(r.status in (RunStatus.PENDING, RunStatus.RUNNING) for r in runs):
            raise Conflict(f"job {job_id} still has a run in progress")
        return await _insert_run(
            conn, project_id, job_id, attempt=len(runs) + 1, launched_by_key_id=launched_by_key_id
        )


async def start_run(db: Db, project_id: UUID, run_id: UUID) -> JobRun:
    """pending -> running."""
    return await _move_run(
        db, project_id, run_id, "status = 'running', started_at = now()", (RunStatus.PENDING,)
    )


async def finish_run(
    db: Db, project_id: UUID, run_id: UUID, status: RunStatus, *, reason: str | None = None
) -> JobRun:
    """running -> succeeded, or pending/running -> failed (with a reason)."""
    status = RunStatus(status)
    if status is RunStatus.SUCCEEDED:
        return await _move_run(
            db, project_id, run_id, "status = 'succeeded', finished_at = now()", (RunStatus.RUNNING,)
        )
    if status is RunStatus.FAILED:
        if not reason:
            raise ValueError("a failed run needs a reason")
        return await _move_run(
            db,
            project_id,
            run_id,
            "status = 'failed', finished_at = now(), reason = $4",
            (RunStatus.PENDING, RunStatus.RUNNING),
            reason,
        )
    raise ValueError(f"a run finishes as succeeded or failed, not {status}")


async def _move_run(
    db: Db, project_id: UUID, run_id: UUID, assignments: str, from_states: tuple[RunStatus, ...], *args: Any
) -> JobRun:
    row = await db.fetchrow(
        f"""UPDATE job_runs SET {assignments}
            WHERE project_id = $1 AND id = $2 AND status = ANY($3::text[]) RETURNING *""",
        project_id,
        run_id,
        [s.value for s in from_states],
        *args,
    )
    if row is not None:
        return JobRun.model_validate(dict(row))
    current = await db.fetchval(
        "SELECT status FROM job_runs WHERE project_id = $1 AND id = $2", project_id, run_id
    )
    if current is None:
        raise NotFound(f"run {run_id} is not in this project")
    raise Conflict(f"run {run_id} is {current}; expected {' or '.join(from_states)}")


async def append_logs(db: Db, project_id: UUID, run_id: UUID, lines: list[tuple[int, str]]) -> None:
    """Store (sequence, line) pairs; a line sent again under the same sequence is kept once."""
    try:
        await db.executemany(
            """INSERT INTO job_logs (project_id, run_id, sequence, line) VALUES ($1, $2, $3, $4)
               ON CONFLICT DO NOTHING""",
            [(project_id, run_id, sequence, line) for sequence, line in lines],
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"run {run_id} is not in this project") from exc


async def read_logs(
    db: Db, project_id: UUID, run_id: UUID, *, after: int = -1, limit: int = 1000
) -> list[LogLine]:
    """Lines after sequence `after`, in order: a follower passes the last sequence it has."""
    rows = await db.fetch(
        """SELECT sequence, line, logged_at FROM job_logs
           WHERE project_id = $1 AND run_id = $2 AND sequence > $3 ORDER BY sequence LIMIT $4""",
        project_id,
        run_id,
        after,
        limit,
    )
    return [LogLine.model_validate(dict(r)) for r in rows]


async def list_jobs(
    db: Db, project_id: UUID, *, kind: JobKind | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[tuple[Job, JobRun | None]], int]:
    """A page of the project's jobs, newest first, each with its latest run, and how many match."""
    kind_value = JobKind(kind).value if kind else None
    rows = await db.fetch(
        """SELECT j.*, to_jsonb(r.*) AS latest_run FROM jobs j
           LEFT JOIN LATERAL (SELECT * FROM job_runs WHERE job_id = j.id ORDER BY attempt DESC LIMIT 1) r
               ON true
           WHERE j.project_id = $1 AND ($2::text IS NULL OR j.kind = $2)
           ORDER BY j.created_at DESC, j.id LIMIT $3 OFFSET $4""",
        project_id,
        kind_value,
        limit,
        offset,
    )
    total = await db.fetchval(
        "SELECT count(*) FROM jobs WHERE project_id = $1 AND ($2::text IS NULL OR kind = $2)",
        project_id,
        kind_value,
    )
    page = []
    for row in rows:
        values = dict(row)
        latest = values.pop("latest_run")
        page.append((Job.model_validate(values), JobRun.model_validate(latest) if latest else None))
    return page, total


async def latest_job(db: Db, project_id: UUID, kind: JobKind, target_id: UUID) -> Job | None:
    """The newest job of `kind` on a target (the deployment's reference job, say)."""
    row = await db.fetchrow(
        """SELECT * FROM jobs WHERE project_id = $1 AND kind = $2 AND target_id = $3
           ORDER BY created_at DESC, id LIMIT 1""",
        project_id,
        JobKind(kind).value,
        target_id,
    )
    return Job.model_validate(dict(row)) if row else None


# The job runner's side: claiming runs, finding those a stopped runner left, the files a run staged out.


async def claim_pending(db: Db, limit: int) -> list[tuple[Job, JobRun]]:
    """Up to `limit` pending runs, oldest first, moved to running together; a run another runner is
    claiming at the same moment is skipped (it takes it)."""
    if limit <= 0:
        return []
    async with transaction(db) as conn:
        rows = await conn.fetch(
            """UPDATE job_runs SET status = 'running', started_at = now()
               WHERE id IN (SELECT id FROM job_runs WHERE status = 'pending'
                            ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
               RETURNING *""",
            limit,
        )
        claimed = [JobRun.model_validate(dict(r)) for r in rows]
        found = await conn.fetch(
            "SELECT * FROM jobs WHERE id = ANY($1::uuid[])", [run.job_id for run in claimed]
        )
    by_id = {row["id"]: Job.model_validate(dict(row)) for row in found}
    return sorted(((by_id[run.job_id], run) for run in claimed), key=lambda pair: pair[1].created_at)


async def running_runs(db: Db) -> list[tuple[Job, JobRun]]:
    """Every run marked running, in every project, with its job."""
    rows = await db.fetch(
        """SELECT to_jsonb(j.*) AS job, to_jsonb(r.*) AS run FROM job_runs r JOIN jobs j ON j.id = r.job_id
           WHERE r.status = 'running' ORDER BY r.started_at, r.id"""
    )
    return [(Job.model_validate(row["job"]), JobRun.model_validate(row["run"])) for row in rows]


async def get_run(db: Db, project_id: UUID, run_id: UUID) -> tuple[Job, JobRun] | None:
    row = await db.fetchrow(
        """SELECT to_jsonb(j.*) AS job, to_jsonb(r.*) AS run FROM job_runs r JOIN jobs j ON j.id = r.job_id
           WHERE r.project_id = $1 AND r.id = $2""",
        project_id,
        run_id,
    )
    return (Job.model_validate(row["job"]), JobRun.model_validate(row["run"])) if row else None


async def find_run(db: Db, run_id: UUID) -> tuple[Job, JobRun] | None:
    """A run by its id alone (a job's workspace step knows only its run)."""
    project_id = await db.fetchval("SELECT project_id FROM job_runs WHERE id = $1", run_id)
    return await get_run(db, project_id, run_id) if project_id else None


async def record_outputs(db: Db, project_id: UUID, run_id: UUID, files: list[OutputFile]) -> None:
    """What the stage-out step uploaded; staging out again replaces it."""
    updated = await db.execute(
        "UPDATE job_runs SET outputs = $3 WHERE project_id = $1 AND id = $2",
        project_id,
        run_id,
        [f.model_dump() for f in files],
    )
    if updated == "UPDATE 0":
        raise NotFound(f"run {run_id} is not in this project")


async def run_outputs(db: Db, project_id: UUID, run_id: UUID) -> list[OutputFile] | None:
    """The files the run staged out; None when it staged out nothing (not even an empty folder)."""
    value = await db.fetchval(
        "SELECT outputs FROM job_runs WHERE project_id = $1 AND id = $2", project_id, run_id
    )
    return None if value is None else [OutputFile.model_validate(f) for f in value]
