"""Where a run's command runs: `local` (a subprocess in a workspace folder) or `kubernetes` (a batch/v1
Job). A backend stages the workspace in, runs the command streaming its output lines to the run's log,
stages the outputs out, and answers how it ended; the runner owns the run's status."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from services.common.domain.jobs import Job, JobRun

from ..commands import JobCommand

Log = Callable[[str], None]


@dataclass(frozen=True)
class Exit:
    succeeded: bool
    reason: str | None = None  # why it failed


def process_exit(returncode: int, *, timed_out: bool, timeout_s: float, last_stderr: str | None) -> Exit:
    """How a command ended, in words (pure): a timeout, a signal or an exit code, with its last stderr
    line, which is where a failing program says why."""
    if timed_out:
        return Exit(False, f"timed out after {timeout_s:g} s")
    if returncode == 0:
        return Exit(True)
    detail = f": {last_stderr}" if last_stderr else ""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return Exit(False, f"killed by signal {name}{detail}")
    return Exit(False, f"exit code {returncode}{detail}")


@dataclass(frozen=True)
class Launch:
    job: Job
    run: JobRun
    command: JobCommand
    processing_name: str | None
    timeout_s: float


class Backend(Protocol):
    # True when a run another runner left running can be followed again (its command lives on outside
    # the runner: a Kubernetes Job), False when it died with that runner (a subprocess).
    resumes_runs: bool

    def clean_orphans(self) -> list[UUID]:
        """At start: stop what a runner that died left running that cannot be followed again, and remove
        its workspaces; answers those runs."""
        ...

    async def close(self) -> None:
        """Release what it holds (an API client) when the runner stops."""
        ...

    async def run(self, launch: Launch, log: Log) -> Exit:
        """Stage in, run, stage out; cancelled, it stops the command before it returns."""
        ...
