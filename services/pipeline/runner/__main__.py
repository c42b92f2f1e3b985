"""`python -m services.pipeline.runner`: the job runner."""

from services.common.service_main import health_app, run_service

from ..settings import PipelineSettings
from .service import JobRunnerService


def main() -> None:
    run_service(
        PipelineSettings(),
        health_app("cvloop job runner", JobRunnerService),
        lambda settings: settings.job_runner_port,
        loop="asyncio",  # its jobs inherit no descriptor: uvloop's subprocesses keep the runner's
    )


if __name__ == "__main__":
    main()
