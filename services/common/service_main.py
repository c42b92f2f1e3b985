"""The `python -m services.<name>` entry every service shares: settings read, logging set up, and its HTTP
app served (/healthz, /readyz, /metrics beside whatever routes it has) until SIGTERM."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from fastapi import FastAPI

from services.common.http import EventLoop, create_app, serve
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


def health_app(title: str, build: Callable[[SettingsT], Service]) -> Callable[[SettingsT], FastAPI]:
    """The app of a service with no routes of its own (a stream, the job runner): health, readiness and
    metrics, with the service `build` makes started and stopped with it."""

    def build_app(settings: SettingsT) -> FastAPI:
        service = build(settings)

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await service.start()
            try:
                yield
            finally:
                await service.stop()

        return create_app(title, service.ready, lifespan=lifespan)

    return build_app


def run_service(
    settings: SettingsT,
    build_app: Callable[[SettingsT], FastAPI],
    port: Callable[[SettingsT], int],
    loop: EventLoop = "auto",
) -> None:
    """Serve the app `build_app` makes from the service's settings on its local-stack port (or
    CVLOOP_HTTP_PORT)."""
    configure_logging(settings.log_level)
    serve(build_app(settings), settings, port(settings), loop)
