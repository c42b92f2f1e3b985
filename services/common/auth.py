"""API-key authentication as a FastAPI dependency: `Authorization: Bearer <key>` -> the key's record.

Scopes nest: `admin` includes `write`, which includes `read`, so a project's first (admin) key can do
everything. A missing or unknown key answers 401, a key without the scope 403. The app keeps its
asyncpg pool at `app.state.pool`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common.db.repositories.projects import ApiKey, Scope, authenticate
from services.common.http import FieldError

_IMPLIED: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ, Scope.WRITE, Scope.ADMIN}),
    Scope.WRITE: frozenset({Scope.WRITE, Scope.ADMIN}),
    Scope.ADMIN: frozenset({Scope.ADMIN}),
}
_BEARER = HTTPBearer(auto_error=False, description="An API key of the project.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
AUTH_FIELD = "header.authorization"


def grants(key_scopes: list[Scope], needed: Scope) -> bool:
    """True when a key holding `key_scopes` may do what needs `needed`."""
    return not _IMPLIED[Scope(needed)].isdisjoint(key_scopes)


def require_scope(scope: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency answering the request's API key when it holds `scope`."""

    async def api_key(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> ApiKey:
        if credentials is None or not credentials.credentials:
            raise FieldError(401, AUTH_FIELD, "missing bearer API key", _CHALLENGE)
        key = await authenticate(request.app.state.pool, credentials.credentials)
        if key is None:
            raise FieldError(401, AUTH_FIELD, "unknown or revoked API key", _CHALLENGE)
        if not grants(key.scopes, scope):
            raise FieldError(403, AUTH_FIELD, f"this API key lacks the {scope.value!r} scope")
        return key

    return api_key


ReadKey = Annotated[ApiKey, Depends(require_scope(Scope.READ))]
WriteKey = Annotated[ApiKey, Depends(require_scope(Scope.WRITE))]
AdminKey = Annotated[ApiKey, Depends(require_scope(Scope.ADMIN))]
