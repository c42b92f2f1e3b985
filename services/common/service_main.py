"""The `python -m services.<name>` entry of a service whose parts start and stop around its HTTP app
(/healthz, /readyz from its readiness, /metrics)."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from fastapi import FastAPI

from services.common.http import create_app, serve
from services.common.logs import configure_logging
from services.common.settings import Settings

SettingsT = TypeVar("SettingsT", bound=Settings)


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def ready(self) -> Awaitable[str | None]: ...


def stop_this_process(_: BaseException) -> None:
    """A stream stopped by an outage stops the process, so it restarts and reads its messages again."""
    os.kill(os.getpid(), signal.SIGTERM)


def run_service(
    title: str, settings: SettingsT, build: Callable[[SettingsT], Service], port: Callable[[SettingsT], int]
) -> None:
    """Serve the service `build` makes from the service's settings, started with the HTTP app and stopped
    with it."""
    configure_logging(settings.log_level)
    service = build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    serve(create_app(title, service.ready, lifespan=lifespan), settings, port(settings))
