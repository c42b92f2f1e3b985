"""The key's project and its API keys."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from schemas.api.common import Page as PageOf
from schemas.api.projects import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, ApiKeyScopes, ProjectOut
from schemas.events import ApiKeyChange, ApiKeyChanged
from schemas.topics import Topic
from services.common.db.repositories import projects
from services.common.domain.projects import ApiKey

from ..context import AdminKey, Ctx, Page, ReadKey
from ..errors import WRITE_ERRORS, not_found
from ..outbox import change

router = APIRouter(prefix="/v1", tags=["projects"])


@router.get("/project")
async def get_project(ctx: Ctx, key: ReadKey) -> ProjectOut:
    project = await projects.get_project(ctx.pool, key.project_id)
    if project is None:  # deleted while its key was in flight
        raise not_found("", "project")
    return ProjectOut.model_validate(project)


@router.get("/api-keys")
async def list_api_keys(ctx: Ctx, key: AdminKey, page: Page) -> PageOf[ApiKeyOut]:
    keys = await projects.list_api_keys(ctx.pool, key.project_id)
    return PageOf[ApiKeyOut](
        items=[ApiKeyOut.model_validate(k) for k in keys[page.offset : page.offset + page.limit]],
        total=len(keys),
    )


@router.post("/api-keys", status_code=201, responses=WRITE_ERRORS)
async def create_api_key(ctx: Ctx, key: AdminKey, body: ApiKeyCreate) -> ApiKeyCreated:
    created, secret = await projects.create_api_key(ctx.pool, key.project_id, body.name, body.scopes)
    return ApiKeyCreated.model_validate(created.model_dump() | {"secret": secret})


def _changed(key: ApiKey, key_id: UUID, change: ApiKeyChange) -> ApiKeyChanged:
    return ApiKeyChanged(project_id=key.project_id, api_key_id=key_id, change=change)


@router.put("/api-keys/{key_id}/scopes", responses=WRITE_ERRORS)
async def set_api_key_scopes(ctx: Ctx, key: AdminKey, key_id: UUID, body: ApiKeyScopes) -> ApiKeyOut:
    """Give a live key other scopes; services that remember keys (serving, ingest) learn of it on
    `api-keys` at once."""
    async with change(ctx) as current:
        changed = await projects.set_api_key_scopes(current.conn, key.project_id, key_id, body.scopes)
        if changed is None:
            raise not_found("path.key_id", "API key")
        current.publish(Topic.API_KEYS, _changed(key, key_id, ApiKeyChange.SCOPES_CHANGED))
    return ApiKeyOut.model_validate(changed)


@router.delete("/api-keys/{key_id}", status_code=204, responses=WRITE_ERRORS)
async def revoke_api_key(ctx: Ctx, key: AdminKey, key_id: UUID) -> Response:
    """Revoke a key: refused from now on by the api, and by serving and ingest once `api-keys` reached
    them (within a second or two; their key cache's lifetime at worst, while Kafka is down)."""
    async with change(ctx) as current:
        if not await projects.revoke_api_key(current.conn, key.project_id, key_id):
            raise not_found("path.key_id", "API key")
        current.publish(Topic.API_KEYS, _changed(key, key_id, ApiKeyChange.REVOKED))
    return Response(status_code=204)
