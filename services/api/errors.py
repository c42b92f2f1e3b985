"""How the repositories' errors answer over HTTP, in the shared error format."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common.db.repositories.base import Conflict, NotFound
from services.common.domain.outbox import EventTooLarge
from services.common.domain.review_state import IllegalTransition
from services.common.http import ApiError, error_responses, field_error

# What a write may answer beyond what every keyed route may (services.common.http.KEYED_ERRORS): its
# change contradicts the current state (a name taken, an illegal review transition); an upload, too large
# or not an accepted file.
WRITE_ERRORS = error_responses(409)
UPLOAD_ERRORS = error_responses(409, 413, 415)

# Unique constraints named by Postgres as <table>_<columns>_key: the body field that collided.
_UNIQUE_FIELDS = {"name": "body.name", "version": "body.version"}


def unique_field(constraint: str | None) -> str:
    columns = (constraint or "").removesuffix("_key").split("_")
    return _UNIQUE_FIELDS.get(columns[-1], "") if columns else ""


def not_found(field: str, what: str) -> ApiError:
    """Missing and another project's look the same: no existence leak."""
    return ApiError(404, field, f"{what} not found")


def install(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return field_error(404, "", str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return field_error(409, "", str(exc))

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, exc: IllegalTransition) -> JSONResponse:
        return field_error(409, "", str(exc))

    @app.exception_handler(EventTooLarge)
    async def _too_large(_: Request, exc: EventTooLarge) -> JSONResponse:
        # The change would publish an event no topic takes: refused whole, before anything is written.
        return field_error(413, exc.field, str(exc))

    @app.exception_handler(asyncpg.UniqueViolationError)
    async def _unique(_: Request, exc: asyncpg.UniqueViolationError) -> JSONResponse:
        return field_error(409, unique_field(exc.constraint_name), "already exists")
