"""API keys on serving's routes: `Authorization: Bearer <key>`, checked against Postgres and trusted
for a short while (a predict call must not cost a database write), scoped to the key's project."""

from __future__ import annotations

import time
from uuid import UUID

from services.common.db.repositories.base import Db
from services.common.db.repositories.projects import ApiKey, Scope, authenticate, hash_api_key

MAX_CACHED_KEYS = 10_000


class Problem(Exception):
    """An HTTP error about one field, answered in services.common.http's error format."""

    def __init__(self, status_code: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.field = field
        self.message = message


class Authenticator:
    def __init__(self, db: Db, cache_s: float) -> None:
        self.db = db
        self.cache_s = cache_s
        self._cache: dict[str, tuple[ApiKey, float]] = {}  # key hash -> (key, trusted until)

    async def project(self, authorization: str | None, scope: Scope) -> UUID:
        """The project of the request's key; Problem 401 without a live key, 403 without the scope."""
        scheme, _, secret = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Problem(401, "authorization", "expected `Authorization: Bearer <api key>`")
        key = await self._key(secret.strip())
        if key is None:
            raise Problem(401, "authorization", "unknown or revoked API key")
        if scope not in key.scopes:
            raise Problem(403, "authorization", f"the API key lacks the `{scope}` scope")
        return key.project_id

    async def _key(self, secret: str) -> ApiKey | None:
        digest = hash_api_key(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        key = await authenticate(self.db, secret)
        if key is not None and self.cache_s > 0:
            if len(self._cache) >= MAX_CACHED_KEYS:
                self._cache.clear()  # crude but bounded: a flood of keys cannot grow memory
            self._cache[digest] = (key, now + self.cache_s)
        return key
