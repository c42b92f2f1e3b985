"""`python -m services.pipeline.runner`: the job runner, with /healthz, /readyz and /metrics."""

from __future__ import annotations

from services.common.service_main import run_service

from ..settings import PipelineSettings
from .service import JobRunnerService

if __name__ == "__main__":
    run_service(
        "cvloop job runner", PipelineSettings(), JobRunnerService, lambda settings: settings.job_runner_port
    )
