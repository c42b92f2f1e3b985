"""`python -m services.pipeline`: the pipeline stream, with /healthz, /readyz and /metrics."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common.http import create_app, serve
from services.common.logs import configure_logging
from services.common.settings import load_settings

from .service import PipelineService


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    # A stream stopped by an outage stops the process, so it restarts and reads the event again.
    service = PipelineService(settings, on_failure=lambda _: os.kill(os.getpid(), signal.SIGTERM))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    serve(create_app("cvloop pipeline", service.ready, lifespan=lifespan), settings, settings.pipeline_port)


if __name__ == "__main__":
    main()
