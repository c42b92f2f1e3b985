"""API keys on HTTP routes: `Authorization: Bearer <key>`, checked against Postgres, holding a scope.

Missing, malformed, unknown or revoked key: 401; a key without the route's scope: 403. The key names
its project, which scopes every query the route makes.
"""

from __future__ import annotations

import time
from uuid import UUID

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
    path). A key revoked or given other scopes is forgotten when its change arrives on `api-keys`
    (services/common/key_changes.py); `remember_s` bounds how long a change missed meanwhile (Kafka
    down) goes unseen. Unknown keys are never remembered."""

    def __init__(self, scope: Scope, *, remember_s: float = 0.0) -> None:
        self.scope = scope
        self.remember_s = remember_s
        self._live: dict[str, tuple[float, ApiKey]] = {}  # key hash -> (until, key)
        # Counts forgettings: a key read from Postgres before one is not remembered after it, since the
        # change may have been committed between the read and the forgetting.
        self._forgotten = 0

    def forget(self, key_id: UUID) -> None:
        """Check the key against Postgres on its next use."""
        self._forgotten += 1
        for digest in [d for d, (_, key) in self._live.items() if key.id == key_id]:
            del self._live[digest]

    def forget_all(self) -> None:
        """Check every key against Postgres on its next use (changes may have been missed)."""
        self._forgotten += 1
        self._live.clear()

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
        forgotten = self._forgotten
        key = await authenticate(pool, secret)
        if key is not None and forgotten == self._forgotten:
            if len(self._live) >= _REMEMBERED_KEYS:
                self._live.clear()
            self._live[digest] = (now + self.remember_s, key)
        return key
