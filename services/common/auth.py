"""API keys on HTTP routes: `Authorization: Bearer <key>`, checked against Postgres, holding a scope.

Missing, malformed, unknown or revoked key: 401; a key without the route's scope: 403. The key names
its project, which scopes every query the route makes.
"""

from __future__ import annotations

from fastapi import Request

from services.common.db.repositories.base import Db
from services.common.db.repositories.projects import ApiKey, Scope, authenticate
from services.common.http import ApiError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer_secret(header: str | None) -> str:
    """The key in an Authorization header; ApiError 401 naming the problem otherwise."""
    if not header:
        raise ApiError(401, "authorization", "missing: send 'Authorization: Bearer <api key>'", _CHALLENGE)
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "authorization", "must be 'Bearer <api key>'", _CHALLENGE)
    return secret.strip()


class RequireScope:
    """FastAPI dependency answering the request's API key when it holds `scope`; the pool is the app's
    `state.pool`. Use: `key: ApiKey = Depends(RequireScope(Scope.WRITE))`."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, request: Request) -> ApiKey:
        secret = bearer_secret(request.headers.get("authorization"))
        pool: Db = request.app.state.pool
        key = await authenticate(pool, secret)
        if key is None:
            raise ApiError(401, "authorization", "unknown or revoked API key", _CHALLENGE)
        if self.scope not in key.scopes:
            raise ApiError(403, "authorization", f"this API key lacks the {self.scope.value} scope")
        return key
