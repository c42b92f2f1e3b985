"""What every HTTP service shares: health and readiness, Prometheus metrics, and one error format.

Errors answer `{"detail": "<field path>: <problem>; ...", "errors": [{"field": ..., "message": ...}]}`
so a client sees which field is at fault (`body.champion.prediction.scores[1]: ...`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from schemas.api.common import ErrorBody
from schemas.codec import field_path
from services.common.settings import Settings

ReadyCheck = Callable[[], Awaitable[str | None]]  # None when ready, else the reason it is not


def problems_of(errors: list[dict[str, Any]], prefix: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Pydantic's errors as the common format's problems; `prefix` says where the model was (`body`)."""
    problems = []
    for error in errors:
        message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        problems.append({"field": field_path((*prefix, *error["loc"])), "message": message})
    return problems


def error_response(status_code: int, problems: list[dict[str, str]], **more: str) -> JSONResponse:
    """The common error body; `more` adds fields a protocol needs beside it (KServe's `error`)."""
    detail = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems)
    return JSONResponse({"detail": detail, "errors": problems, **more}, status_code=status_code)


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


async def read_body(request: Request, limit: int, field: str = "") -> bytes:
    """The request's body, refused with 413 once it passes `limit` bytes: a declared Content-Length
    before anything is read, a chunked body (which declares none) as its bytes stream in."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, field, f"the body is {declared} bytes; at most {limit} are accepted")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, field, f"the body is over {limit} bytes; at most {limit} are accepted")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_multipart(request: Request, body: bytes, field: str, max_fields: int) -> FormData:
    """A multipart body already read (within its limit) as form parts: at most one file."""

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        return await MultiPartParser(request.headers, stream(), max_files=1, max_fields=max_fields).parse()
    except MultiPartException as exc:
        raise ApiError(422, field, f"unreadable multipart body: {exc.message}") from None


_MEANINGS = {
    400: "The request is malformed (the field and why).",
    401: "No API key, or one that is unknown or revoked.",
    403: "The API key lacks the scope this route needs.",
    404: "Not found in the key's project (another project's looks the same).",
    409: "The request contradicts the current state.",
    413: "The body or the image is larger than accepted.",
    415: "The body is not an accepted kind of file.",
    422: "A field is invalid (the field and why).",
    502: "A model failed to answer.",
    503: "Not ready now (starting, or a dependency is down): retry.",
}
# What any keyed route may answer: the key is checked, ids are looked up, the input is validated.
KEYED_ERRORS = (401, 403, 404, 422)
BINARY = {"type": "string", "format": "binary"}


def error_responses(*codes: int, model: type[BaseModel] = ErrorBody) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these error statuses, all in the one error format."""
    return {code: {"model": model, "description": _MEANINGS[code]} for code in codes}


def body_of(content: dict[str, type[BaseModel] | dict[str, Any]], description: str = "") -> dict[str, Any]:
    """`openapi_extra` declaring the body a handler reads itself (to bound it as it streams), by media
    type: a model by reference (listed in create_app's `body_models`) or a literal schema."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                media_type: {
                    "schema": {"$ref": f"#/components/schemas/{schema.__name__}"}
                    if isinstance(schema, type)
                    else schema
                }
                for media_type, schema in content.items()
            },
        }
    }


def _with_body_models(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Add the schemas of bodies declared with `body_of` to the OpenAPI document's components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(schema.pop("$defs", {}))
                components[model.__name__] = schema
        return app.openapi_schema  # type: ignore[return-value]  # set by generate()

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    title: str,
    ready: ReadyCheck,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    registry: CollectorRegistry = REGISTRY,
    body_models: Sequence[type[BaseModel]] = (),
    **fastapi_options: Any,
) -> FastAPI:
    """The service's app: errors answered in one format (and documented so on every route, replacing
    FastAPI's own 422 schema), health, readiness and metrics."""
    app = FastAPI(title=title, lifespan=lifespan, responses=error_responses(*KEYED_ERRORS), **fastapi_options)
    _with_body_models(app, body_models)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, problems_of(list(exc.errors())))

    @app.exception_handler(ValidationError)
    async def _invalid_body(_: Request, exc: ValidationError) -> JSONResponse:
        # A model built by hand inside a handler (a multipart field parsed as JSON, say) is still bad input.
        return error_response(422, problems_of(exc.errors(include_url=False)))

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
