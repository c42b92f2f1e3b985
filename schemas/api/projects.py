"""Projects and their API keys."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from schemas.vocabulary import Scope

from .common import Answer, Body, Name


class ProjectOut(Answer):
    id: UUID
    name: str
    created_at: datetime


class ApiKeyCreate(Body):
    name: Name
    scopes: list[Scope] = Field(min_length=1)


class ApiKeyScopes(Body):
    scopes: list[Scope] = Field(min_length=1)


class ApiKeyOut(Answer):
    id: UUID
    name: str
    key_prefix: str = Field(description="The secret's first characters, to tell keys apart.")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="Shown once: only its hash is stored.")
