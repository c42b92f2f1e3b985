"""The asyncpg pool every service uses: JSON columns in and out as Python values."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from .migrations import migrate


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool on `dsn` (a service passes settings.database_url), with json/jsonb as dicts and lists."""
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection)


async def open_pool(dsn: str, *, max_size: int = 10) -> asyncpg.Pool:
    """What a service calls at start-up: the pool, with the schema migrated to the newest version."""
    pool = await create_pool(dsn, max_size=max_size)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    except BaseException:
        await pool.close()
        raise
    return pool


async def ping(pool: asyncpg.Pool) -> None:
    """A round trip to Postgres, for readiness checks; raises what the connection raises."""
    await pool.fetchval("SELECT 1")
