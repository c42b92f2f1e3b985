"""Revocation reaches every service within seconds, against the real servers: serving and ingest run as
they do (`python -m services.<name>`) trusting a checked key for 30 s, the api runs on the same database
and publishes each key change on `api-keys` through its outbox. A key each service has just accepted is
refused by all three soon after the api answered its revocation (or its change of scopes); the poll's
bound is well under the 30 s the services would otherwise trust the key. The times measured are printed
(run with `-s`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from uuid import uuid4

import httpx
import pytest

from cvloop.stack import stack
from cvloop.stack.settings import StackSettings
from tests.api_support import Api, Project, Running, new_project, running_app

TRUSTED_S = 30.0  # how long serving and ingest may trust a key they checked, in this module
REFUSED_WITHIN_S = 10.0  # the poll's bound: far below TRUSTED_S, so only the event can make it

Call = Callable[[str], Awaitable[int]]  # a request with this key, answering its status


@pytest.fixture(scope="module")
def services(
    postgres_settings: StackSettings,
    kafka_settings: StackSettings,
    s3_settings: StackSettings,
    triton_settings: StackSettings,
) -> Iterator[StackSettings]:
    started = triton_settings.model_copy(
        update={"serving_auth_cache_s": TRUSTED_S, "ingest_cache_s": TRUSTED_S}
    )
    for health in stack.up(started, ["ingest", "serving"]):
        assert health.ok, health
    yield started
    for _ in stack.down(started, ["ingest", "serving"]):
        pass


@pytest.fixture(scope="module")
async def running(services: StackSettings) -> AsyncIterator[Running]:
    async for app in running_app(services, services.database_url):
        yield app


@pytest.fixture
async def calls(services: StackSettings, running: Running) -> AsyncIterator[dict[str, Call]]:
    """Per service, a request that a live write key passes (answered 404: no such deployment, or 200)."""
    async with httpx.AsyncClient(timeout=10) as http:

        async def serving(secret: str) -> int:
            answer = await http.post(
                f"http://127.0.0.1:{services.serving_port}/v1/deployments/{uuid4()}/predict",
                content=b"x",
                headers={"Authorization": f"Bearer {secret}"},
            )
            return answer.status_code

        async def ingest(secret: str) -> int:
            answer = await http.post(
                f"http://127.0.0.1:{services.ingest_port}/v1/deployments/{uuid4()}/predictions",
                json={},
                headers={"Authorization": f"Bearer {secret}"},
            )
            return answer.status_code

        async def api(secret: str) -> int:
            return (
                await running.as_key(secret).raw("POST", "/v1/models", json={"name": uuid4().hex})
            ).status_code

        yield {"serving": serving, "ingest": ingest, "api": api}


async def _key_id(admin: Api, name: str) -> str:
    keys = await admin("GET", "/v1/api-keys", 200)
    return next(k["id"] for k in keys["items"] if k["name"] == name)


async def _seconds_until(call: Call, secret: str, status: int) -> float:
    """Seconds from now until `call` with the key answers `status`, polling; TimeoutError past the bound."""
    started = time.monotonic()
    async with asyncio.timeout(REFUSED_WITHIN_S):
        while True:
            if await call(secret) == status:
                return time.monotonic() - started
            await asyncio.sleep(0.02)


async def _accepted_everywhere(calls: dict[str, Call], secret: str) -> None:
    """Each service accepts the key now, so serving and ingest trust it from here on."""
    for name, call in calls.items():
        assert await call(secret) in (200, 201, 404), name


async def test_a_revoked_key_is_refused_by_serving_ingest_and_the_api(
    running: Running, calls: dict[str, Call]
) -> None:
    project: Project = await new_project(running.pool)
    admin = running.as_key(project.admin)
    await _accepted_everywhere(calls, project.write)
    key_id = await _key_id(admin, "write-key")

    await admin("DELETE", f"/v1/api-keys/{key_id}", 204)
    measured = await asyncio.gather(*(_seconds_until(call, project.write, 401) for call in calls.values()))
    print("revoked key refused after (s):", {n: round(s, 3) for n, s in zip(calls, measured, strict=True)})
    for call in calls.values():
        assert await call(project.write) == 401


async def test_a_key_given_other_scopes_is_checked_anew_by_serving_ingest_and_the_api(
    running: Running, calls: dict[str, Call]
) -> None:
    project: Project = await new_project(running.pool)
    admin = running.as_key(project.admin)
    await _accepted_everywhere(calls, project.write)
    key_id = await _key_id(admin, "write-key")

    changed = await admin("PUT", f"/v1/api-keys/{key_id}/scopes", 200, json={"scopes": ["read"]})
    assert changed["scopes"] == ["read"]
    measured = await asyncio.gather(*(_seconds_until(call, project.write, 403) for call in calls.values()))
    print("write scope withdrawn after (s):", {n: round(s, 3) for n, s in zip(calls, measured, strict=True)})
    other = await new_project(running.pool)
    foreign = await running.as_key(other.admin).raw(
        "PUT", f"/v1/api-keys/{key_id}/scopes", json={"scopes": ["read"]}
    )
    assert foreign.status_code == 404 and foreign.json()["errors"][0]["field"] == "path.key_id"
