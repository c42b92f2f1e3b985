"""`cvloop jobs ...`: follow training, processing and reference jobs."""

from __future__ import annotations

import sys
from typing import Any
from uuid import UUID

import click

from cvloop.sdk import Client
from cvloop.sdk.jobs import launched_by
from schemas.events import JobKind
from schemas.vocabulary import RunStatus

from .sdk import wait_with_bar, with_client


@click.group()
def jobs() -> None:
    """Jobs: status, logs, waiting, re-running."""


def _line(job_id: object, kind: str, status: str | None) -> str:
    return f"{job_id}  {kind:<10} {status or '-'}"


@jobs.command("list")
@click.option("--kind", type=click.Choice([k.value for k in JobKind]), default=None)
@with_client
def jobs_list(client: Client, kind: str | None) -> None:
    """List jobs with their latest run's status and who launched it, when."""
    for job in client.list_jobs(kind):
        click.echo(f"{_line(job.id, job.kind, job.status)}  launched by {job.launched_by}")


@jobs.command("show")
@click.argument("job_id", type=click.UUID)
@with_client
def jobs_show(client: Client, job_id: UUID) -> None:
    """Show a job and each of its runs."""
    job = client.get_job(job_id)
    click.echo(_line(job.id, job.kind, job.status))
    for run in job.data.get("runs") or []:
        reason = f"  {run['reason']}" if run.get("reason") else ""
        click.echo(
            f"  run {run['attempt']}  {run['status']:<10} {run.get('duration_s') or '-'} s"
            f"  launched by {launched_by(run)}{reason}"
        )


@jobs.command("wait")
@click.argument("job_id", type=click.UUID)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=600.0, show_default=True)
@click.option("--poll", "poll_s", type=click.FloatRange(min=0.05), default=1.0, show_default=True)
@with_client
def jobs_wait(client: Client, job_id: UUID, timeout_s: float, poll_s: float) -> None:
    """Wait for the job's latest run to finish; exits 1 when it failed."""
    job = wait_with_bar(client.get_job(job_id), timeout_s, poll_s)
    click.echo(_line(job.id, job.kind, job.status))
    _exit_unless_succeeded(job.latest_run)


def _exit_unless_succeeded(run: dict[str, Any] | None) -> None:
    if run is None or run["status"] != RunStatus.SUCCEEDED:
        click.echo(f"failed: {(run or {}).get('reason')}", err=True)
        sys.exit(1)


@jobs.command("logs")
@click.argument("job_id", type=click.UUID)
@click.option("-f", "--follow", is_flag=True, help="Keep printing lines until the run finishes.")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0.05), default=1.0, show_default=True)
@with_client
def jobs_logs(client: Client, job_id: UUID, follow: bool, poll_s: float) -> None:
    """Print the latest run's log lines; with -f, exits 1 when the run failed."""
    job = client.get_job(job_id)
    if follow:
        followed = job.latest_run  # the run follow_logs reads: the latest when it starts
        for line in job.follow_logs(poll_s=poll_s):
            click.echo(line.text)
        runs = job.refresh().data.get("runs") or []
        _exit_unless_succeeded(next((r for r in runs if followed and r["id"] == followed["id"]), None))
        return
    after, run_id = None, None
    while True:  # page by page, as many as the server splits them into
        page = job.logs(after=after, run_id=run_id)
        if not page.lines:
            return
        for line in page.lines:
            click.echo(line.text)
        after, run_id = page.lines[-1].number, page.run_id


@jobs.command("rerun")
@click.argument("job_id", type=click.UUID)
@with_client
def jobs_rerun(client: Client, job_id: UUID) -> None:
    """Start a new run of a finished job."""
    run = client.get_job(job_id).rerun()
    click.echo(f"run {run.get('attempt')}  {run.get('status')}  {run.get('id')}")
