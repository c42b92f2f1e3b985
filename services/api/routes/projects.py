"""The key's project and its API keys."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from schemas.api.common import Page as PageOf
from schemas.api.projects import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, ProjectOut
from services.common.db.repositories import projects

from ..context import AdminKey, Ctx, Page, ReadKey
from ..errors import WRITE_ERRORS, not_found

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


@router.delete("/api-keys/{key_id}", status_code=204, responses=WRITE_ERRORS)
async def revoke_api_key(ctx: Ctx, key: AdminKey, key_id: UUID) -> Response:
    if not await projects.revoke_api_key(ctx.pool, key.project_id, key_id):
        raise not_found("path.key_id", "API key")
    return Response(status_code=204)
