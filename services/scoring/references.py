"""The references the stream scores against, loaded from Postgres and the object store. A deployment's
ready reference is trusted for SCORING_REFERENCE_REFRESH_S before Postgres is asked again; a deployment
without one is asked about at every batch, so the first predictions after it becomes ready are scored.
A reference's content never changes (a new reference has a new id), so it is loaded once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from services.common.db.repositories.training_references import ready_reference
from services.common.storage import ObjectStore

from .reference import Reference


@dataclass(frozen=True)
class LoadedReference:
    id: UUID
    project_id: UUID
    ready_at: datetime  # predictions logged before it get no score (not retroactive)
    reference: Reference


class ReferenceCache:
    def __init__(self, pool: asyncpg.Pool, store: ObjectStore, refresh_s: float) -> None:
        self._pool = pool
        self._store = store
        self._refresh_s = refresh_s
        self._checked: dict[UUID, tuple[float, LoadedReference]] = {}
        self._contents: dict[UUID, Reference] = {}

    async def get(self, deployment_id: UUID) -> LoadedReference | None:
        """The deployment's ready reference, or None while it has none."""
        checked = self._checked.get(deployment_id)
        if checked is not None and time.monotonic() - checked[0] < self._refresh_s:
            return checked[1]
        self._checked.pop(deployment_id, None)
        row = await ready_reference(self._pool, deployment_id)
        loaded: LoadedReference | None = None
        if row is not None:
            content = self._contents.get(row.id)
            if content is None:
                data = await asyncio.to_thread(self._store.get_bytes, row.object_key)
                content = self._contents[row.id] = Reference.from_bytes(data)
            assert row.created_at is not None
            loaded = LoadedReference(row.id, row.project_id, row.created_at, content)
            self._checked[deployment_id] = (time.monotonic(), loaded)
        return loaded
