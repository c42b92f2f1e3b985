"""Jobs (training, processing, reference): their runs, waiting for the latest to finish, and logs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from schemas.vocabulary import RunStatus

from .resource import Resource

FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED})


class LogLine(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    number: int
    text: str


class LogPage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: UUID | None = None
    lines: list[LogLine]
    finished: bool


class JobTimeout(TimeoutError):
    """The job's latest run had not finished when the wait ran out."""


def launched_by(run: dict[str, Any]) -> str:
    """Who launched a run and when: `<key name> (<key id>) at <time>`, or `the platform at <time>` for a
    run the platform started (a training the pipeline requested)."""
    launcher = run.get("launched_by")
    who = f"{launcher['key_name']} ({launcher['key_id']})" if launcher else "the platform"
    return f"{who} at {run['created_at']}"


class Job(Resource):
    path = "/v1/jobs/{id}"

    @property
    def kind(self) -> str:
        return self.data["kind"]

    @property
    def latest_run(self) -> dict[str, Any] | None:
        runs = self.data.get("runs")
        if runs:
            return max(runs, key=lambda run: run["attempt"])
        return self.data.get("latest_run")

    @property
    def launched_by(self) -> str:
        """Who launched the latest run and when (see `launched_by`)."""
        run = self.latest_run
        return launched_by(run) if run else "-"

    @property
    def status(self) -> str | None:
        """The latest run's status: pending, running, succeeded or failed."""
        run = self.latest_run
        return run["status"] if run else None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def logs(self, after: int | None = None, run_id: UUID | str | None = None) -> LogPage:
        """Lines numbered above `after` of one run (default: the latest)."""
        params = {"after": after, "run_id": str(run_id) if run_id else None}
        return LogPage.model_validate(self.client.api.get(f"{self.url}/logs", params))

    def follow_logs(
        self, poll_s: float = 1.0, timeout_s: float | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> Iterator[LogLine]:
        """Each line of the latest run as it is written, until the run finishes (or the timeout)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        after: int | None = None
        run_id: UUID | None = None
        while True:
            page = self.logs(after=after, run_id=run_id)
            run_id = page.run_id or run_id  # stay on one run even if a re-run starts meanwhile
            for line in page.lines:
                yield line
                after = line.number
            if page.finished:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"job {self.id}: logs still open after {timeout_s} s")
            if not page.lines:
                sleep(poll_s)

    def wait(
        self,
        timeout_s: float = 600.0,
        poll_s: float = 1.0,
        on_poll: Callable[[Job], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Job:
        """Read the job again until its latest run has finished; `on_poll` sees each reading."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.refresh()
            if on_poll is not None:
                on_poll(self)
            if self.finished:
                return self
            if time.monotonic() >= deadline:
                raise JobTimeout(f"job {self.id} is still {self.status} after {timeout_s} s")
            sleep(poll_s)

    def rerun(self) -> dict[str, Any]:
        """Start a new run (409 while one is active); answers the new run."""
        run = self.client.api.post(f"{self.url}/rerun")
        self.refresh()
        return run
