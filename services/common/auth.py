"""API keys on HTTP routes: `Authorization: Bearer <key>`, checked against Postgres, holding a scope.

Missing, malformed, unknown or revoked key: 401; a key without the route's scope: 403. The key names
its project, which scopes every query the route makes.
"""

from __future__ import annotations

import time

from fastapi import Request

from schemas.vocabulary import Scope
from services.common.db.repositories.base import Db
from services.common.db.repositories.projects import authenticate
from services.common.domain.projects import ApiKey, hash_api_key
from services.common.http import ApiError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_REMEMBERED_KEYS = 10_000  # bounded: forgotten all at once when full


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
    `state.pool`. Use: `key: ApiKey = Depends(RequireScope(Scope.WRITE))`.

    With `remember_s`, a key found live is trusted that long without asking Postgres again (a hot intake
    path): a revoked key then keeps working up to `remember_s`. Unknown keys are never remembered."""

    def __init__(self, scope: Scope, *, remember_s: float = 0.0) -> None:
        self.scope = scope
        self.remember_s = remember_s
        self._live: dict[str, tuple[float, ApiKey]] = {}  # key hash -> (until, key)

    async def __call__(self, request: Request) -> ApiKey:
        secret = bearer_secret(request.headers.get("authorization"))
        key = await self._authenticate(request.app.state.pool, secret)
        if key is None:
            raise ApiError(401, "authorization", "unknown or revoked API key", _CHALLENGE)
        if self.scope not in key.scopes:
            raise ApiError(403, "authorization", f"this API key lacks the {self.scope.value} scope")
        return key

    async def _authenticate(self, pool: Db, secret: str) -> ApiKey | None:
        if not self.remember_s:
            return await authenticate(pool, secret)
        digest, now = hash_api_key(secret), time.monotonic()
        remembered = self._live.get(digest)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        key = await authenticate(pool, secret)
        if key is not None:
            if len(self._live) >= _REMEMBERED_KEYS:
                self._live.clear()
            self._live[digest] = (now + self.remember_s, key)
        return key
