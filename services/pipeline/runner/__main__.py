"""`python -m services.pipeline.runner`: the job runner, with /healthz, /readyz and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common.http import create_app, serve
from services.common.logs import configure_logging
from services.common.settings import load_settings

from .service import JobRunnerService


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    service = JobRunnerService(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    serve(
        create_app("cvloop job runner", service.ready, lifespan=lifespan), settings, settings.job_runner_port
    )


if __name__ == "__main__":
    main()
