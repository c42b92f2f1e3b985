"""The `main` of a job command run in the job workspace (a trainer, a processing)."""

from __future__ import annotations

from collections.abc import Callable

from services.common.logs import configure_logging

from .workspace import JobInputError, Workspace


def run_in_workspace(job: Callable[[Workspace], object], what: str) -> None:
    """Run `job` on the workspace the runner made; input it cannot use ends the job with the reason."""
    configure_logging("INFO")  # the job's log is what people watch while it runs
    try:
        job(Workspace.from_env())
    except JobInputError as exc:
        raise SystemExit(f"{what} failed: {exc}") from None
