"""What every HTTP service shares: health and readiness, Prometheus metrics, and one error format.

Errors answer `{"detail": "<field path>: <problem>; ...", "errors": [{"field": ..., "message": ...}]}`
so a client sees which field is at fault (`body.champion.prediction.scores[1]: ...`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from schemas.codec import field_path
from services.common.settings import Settings

ReadyCheck = Callable[[], Awaitable[str | None]]  # None when ready, else the reason it is not


def _problems(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    problems = []
    for error in errors:
        message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        problems.append({"field": field_path(tuple(error["loc"])), "message": message})
    return problems


def error_response(status_code: int, problems: list[dict[str, str]]) -> JSONResponse:
    detail = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems)
    return JSONResponse({"detail": detail, "errors": problems}, status_code=status_code)


def field_error(status_code: int, field: str, message: str) -> JSONResponse:
    """An error about one named field (or about the request as a whole when field is empty)."""
    return error_response(status_code, [{"field": field, "message": message}])


class ApiError(HTTPException):
    """An error about one field (empty: the request as a whole), raised from a handler or a dependency
    and answered in the common format."""

    def __init__(
        self, status_code: int, field: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code, detail=message, headers=headers)
        self.field = field


def create_app(
    title: str,
    ready: ReadyCheck,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    registry: CollectorRegistry = REGISTRY,
    **fastapi_options: Any,
) -> FastAPI:
    app = FastAPI(title=title, lifespan=lifespan, **fastapi_options)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _problems(list(exc.errors())))

    @app.exception_handler(ValidationError)
    async def _invalid_body(_: Request, exc: ValidationError) -> JSONResponse:
        # A model built by hand inside a handler (a multipart field parsed as JSON, say) is still bad input.
        return error_response(422, _problems(exc.errors(include_url=False)))

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        response = field_error(exc.status_code, getattr(exc, "field", ""), str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        reason = await ready()
        if reason is None:
            return PlainTextResponse("ready")
        return PlainTextResponse(reason, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def always_ready() -> str | None:
    return None


EventLoop = Literal["auto", "asyncio"]


def serve(app: FastAPI, settings: Settings, local_port: int, loop: EventLoop = "auto") -> None:
    """Run the app until SIGTERM; on its local-stack port unless CVLOOP_HTTP_PORT says otherwise.

    The port is bound before the app starts: uvicorn would bind it after the lifespan, whose outgoing
    connections (Postgres, Kafka, S3) may meanwhile be given that very port as their ephemeral one. It is
    not inherited by a child process (uvicorn marks it inheritable for workers this never starts): a
    child left running would hold the port. `loop` "asyncio": the standard library's event loop, whose
    subprocesses inherit no descriptor (uvloop's ignore close_fds)."""
    config = uvicorn.Config(
        app,
        host=settings.bind_host,
        port=settings.http_port or local_port,
        log_level=settings.log_level.lower(),
        access_log=False,  # per-request lines are what the metrics are for
        loop=loop,
    )
    listening = config.bind_socket()
    listening.set_inheritable(False)
    uvicorn.Server(config).run(sockets=[listening])
