"""What every request handler reaches: the pool, the object store, the event producer, the settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

import asyncpg
from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from schemas.limits import INT64_MAX
from schemas.vocabulary import Scope
from services.common.auth import RequireScope
from services.common.domain.projects import ApiKey
from services.common.http import ApiError
from services.common.kafka.producer import EventProducer
from services.common.storage import ObjectStore

from .settings import ApiSettings

MAX_PAGE = 500


@dataclass(frozen=True)
class Context:
    settings: ApiSettings
    pool: asyncpg.Pool
    store: ObjectStore
    producer: EventProducer
    outbox_wake: asyncio.Event = field(default_factory=asyncio.Event)  # set when a change committed events


def _context(request: Request) -> Context:
    return request.app.state.context


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int


def _paging(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX, description="Items to skip.")] = 0,
) -> Paging:
    return Paging(limit, offset)


Ctx = Annotated[Context, Depends(_context)]
Page = Annotated[Paging, Depends(_paging)]


# RequireScope checks the key; the bearer scheme only describes it in the OpenAPI document.
_BEARER = HTTPBearer(auto_error=False, description="An API key of the project.")


class _Key:
    """The request's API key when it holds `scope`."""

    def __init__(self, scope: Scope) -> None:
        self.require = RequireScope(scope)

    async def __call__(
        self, request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
    ) -> ApiKey:
        return await self.require(request)


ReadKey = Annotated[ApiKey, Depends(_Key(Scope.READ))]
WriteKey = Annotated[ApiKey, Depends(_Key(Scope.WRITE))]
AdminKey = Annotated[ApiKey, Depends(_Key(Scope.ADMIN))]


def require_scope(key: ApiKey, scope: Scope, field: str) -> None:
    """403 naming `field` when what the request sets there needs a scope the key lacks (a write key may
    create a model version, but only an admin key may give it code to train with)."""
    if scope not in key.scopes:
        raise ApiError(403, field, f"setting this needs an API key with the {scope.value} scope")
