"""What every repository shares: the executor type, the errors, transactions on a pool or connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

# A pool, a connection, or a pool's connection proxy: all run queries the same way.
Db = asyncpg.Pool | asyncpg.Connection


class NotFound(LookupError):
    """The row does not exist in the caller's project."""


class Conflict(RuntimeError):
    """The request contradicts the row's current state."""


@asynccontextmanager
async def transaction(db: Db) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on one connection (a savepoint when the caller already opened one)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():
            yield db
