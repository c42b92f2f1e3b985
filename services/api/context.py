"""What every request handler reaches: the pool, the object store, the event producer, the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Query, Request

from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore

MAX_PAGE = 500


@dataclass(frozen=True)
class Context:
    settings: Settings
    pool: asyncpg.Pool
    store: ObjectStore
    producer: EventProducer


def _context(request: Request) -> Context:
    return request.app.state.context


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int


def _paging(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
) -> Paging:
    return Paging(limit, offset)


Ctx = Annotated[Context, Depends(_context)]
Page = Annotated[Paging, Depends(_paging)]
