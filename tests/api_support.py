"""What the control-plane tests share: the app on a database of its own, projects with keys, images,
and reading what the app published."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import numpy as np
from fastapi import FastAPI
from PIL import Image

from schemas import decode
from schemas.events import ImageRef, PredictionLogged, PredictionSource, RoleResult
from schemas.predictions import Prediction
from schemas.vocabulary import Scope
from services.api.app import build_app
from services.common.db.pool import create_pool
from services.common.db.repositories import projects
from services.common.kafka.consumer import create_consumer
from services.common.settings import Settings

WAIT_S = 60.0
MAX_UPLOAD = 1024 * 1024  # small, so a test can exceed it


def png(seed: int, width: int = 64, height: int = 48) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Project:
    id: UUID
    admin: str  # secrets: read, read+write, read+write+admin
    write: str
    read: str


async def new_project(pool: asyncpg.Pool, name: str | None = None) -> Project:
    """What `cvloop projects create` does: the project and its keys."""
    project = await projects.create_project(pool, name or f"project-{uuid4().hex[:8]}")
    secrets = {}
    for scopes in ([Scope.READ], [Scope.READ, Scope.WRITE], list(Scope)):
        _, secrets[scopes[-1]] = await projects.create_api_key(pool, project.id, f"{scopes[-1]}-key", scopes)
    return Project(project.id, secrets[Scope.ADMIN], secrets[Scope.WRITE], secrets[Scope.READ])


class Api:
    """An httpx client on the app, authenticated as one key unless told otherwise."""

    def __init__(self, app: FastAPI, secret: str | None) -> None:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://api",
            headers=headers,
        )

    async def __call__(self, method: str, path: str, expect: int | None = None, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        if expect is not None:
            assert response.status_code == expect, response.text
        return response.json() if response.content else None

    async def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, path, **kwargs)


@dataclass
class Running:
    app: FastAPI
    pool: asyncpg.Pool
    settings: Settings

    def as_key(self, secret: str | None) -> Api:
        return Api(self.app, secret)


async def running_app(settings: Settings, dsn: str) -> AsyncIterator[Running]:
    app_settings = settings.model_copy(
        update={"database_url_setting": dsn, "api_outbox_retry_s": 0.5, "api_max_upload_bytes": MAX_UPLOAD}
    )
    app = build_app(app_settings)
    async with app.router.lifespan_context(app):
        pool = await create_pool(dsn, max_size=4)
        try:
            yield Running(app, pool, app_settings)
        finally:
            await pool.close()


async def new_database(postgres_url: str, prefix: str) -> AsyncIterator[str]:
    """The address of an empty database of its own on the server of `postgres_url`, dropped afterwards."""
    name = f"{prefix}_{uuid4().hex}"
    root = postgres_url.rsplit("/", 1)[0]
    admin = await asyncpg.connect(f"{root}/postgres")
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield f"{root}/{name}"
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


async def running_app_on_new_database(settings: Settings, postgres_url: str) -> AsyncIterator[Running]:
    """The api on a database of its own on the server of `postgres_url`, dropped afterwards."""
    async for dsn in new_database(postgres_url, "api"):
        async for app in running_app(settings, dsn):
            yield app


async def published(
    settings: Settings, topics: list[str], keep: Callable[[Any], bool], count: int, *, settle_s: float = 0.0
) -> list[Any]:
    """Decoded events of `topics` that `keep` accepts, once `count` arrived (then `settle_s` more, to
    see that no extra one follows)."""
    consumer = create_consumer(settings, f"test-{uuid4()}", *topics)
    await consumer.start()
    kept: list[Any] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(kept) < count:
                batches = await consumer.getmany(timeout_ms=200)
                kept += _decoded_kept(batches, keep)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_s
        while loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            kept += _decoded_kept(batches, keep)
    finally:
        await consumer.stop()
    return kept


def _decoded_kept(batches: dict[Any, list[Any]], keep: Callable[[Any], bool]) -> list[Any]:
    """The events `keep` accepts; records that are no event (the poison other tests publish on the
    shared topics) are passed over."""
    kept = []
    for records in batches.values():
        for record in records:
            try:
                event = decode(record.topic, record.value)
            except ValueError:
                continue
            if keep(event):
                kept.append(event)
    return kept


def recorded_prediction(
    dep: dict[str, Any],
    upload: dict[str, Any],
    champion: Prediction | dict[str, Any],
    *,
    shadow: Prediction | dict[str, Any] | None = None,
    latency_ms: float = 3.0,
    shadow_latency_ms: float | None = None,
    prediction_id: UUID | None = None,
    predicted_at: datetime | None = None,
    tags: list[str] | None = None,
) -> PredictionLogged:
    """A prediction as ingest's persistence consumer records it: the deployment `dep`'s champion (and
    shadow, twice as slow unless told) answering an uploaded 64x48 PNG sent to the monitor API."""
    answer = RoleResult.model_validate(
        {
            "model_version_id": dep["champion_model_version_id"],
            "prediction": champion,
            "latency_ms": latency_ms,
        }
    )
    return PredictionLogged(
        deployment_id=UUID(dep["id"]),
        prediction_id=prediction_id or uuid4(),
        detection_type=answer.prediction.type,
        image=ImageRef(
            object_key=upload["object_key"],
            sha256=upload["sha256"],
            width=64,
            height=48,
            content_type="image/png",
        ),
        champion=answer,
        shadow=RoleResult.model_validate(
            {
                "model_version_id": dep["shadow_model_version_id"],
                "prediction": shadow,
                "latency_ms": 2 * latency_ms if shadow_latency_ms is None else shadow_latency_ms,
            }
        )
        if shadow is not None
        else None,
        source=PredictionSource.MONITOR_API,
        tags=tags or [],
        predicted_at=predicted_at or datetime.now(UTC),
    )
