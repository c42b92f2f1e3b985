"""Projects and their API keys (the secret itself is never stored, only its hash)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from schemas.vocabulary import Scope

KEY_PREFIX = "cvl_"


class Project(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    name: str
    created_at: datetime


class ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    project_id: UUID
    name: str
    key_prefix: str
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
