"""The references the stream scores against, loaded from Postgres and the object store. A deployment's
ready reference is trusted for SCORING_REFERENCE_REFRESH_S before Postgres is asked again; a deployment
without one is asked about at every batch, so the first predictions after it becomes ready are scored.
A reference's content never changes (a new reference has a new id), so it is loaded once. One that
cannot be loaded (its object missing or not a reference) marks the deployment's training data failed
with the reason, and the deployment's predictions go unscored until a new reference is ready; the
others are scored as before. A store that does not answer is an outage: the stream retries."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from services.common.db.repositories.training_references import fail_reference, ready_reference
from services.common.domain.deployments import TrainingReference
from services.common.storage import ObjectStore, is_missing

from .reference import Reference

logger = logging.getLogger(__name__)


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
        if row is None:
            return None
        content = self._contents.get(row.id) or await self._load(row)
        if content is None:
            return None
        assert row.created_at is not None
        loaded = LoadedReference(row.id, row.project_id, row.created_at, content)
        self._checked[deployment_id] = (time.monotonic(), loaded)
        return loaded

    async def _load(self, row: TrainingReference) -> Reference | None:
        """The reference's content, or None once its deployment is marked failed with why."""
        try:
            data = await asyncio.to_thread(self._store.get_bytes, row.object_key)
        except Exception as exc:
            if not is_missing(exc):
                raise
            return await self._failed(row, f"reference object {row.object_key} is missing")
        try:
            content = Reference.from_bytes(data)
        except Exception as exc:  # whatever the bytes are, they are not a reference
            return await self._failed(row, f"reference object {row.object_key} is not a reference: {exc!r}")
        self._contents[row.id] = content
        return content

    async def _failed(self, row: TrainingReference, reason: str) -> None:
        await fail_reference(self._pool, row.project_id, row.deployment_id, row.dataset_version_id, reason)
        logger.error(
            "reference cannot be loaded; the deployment's training data is marked failed",
            extra={"deployment_id": str(row.deployment_id), "reference_id": str(row.id), "reason": reason},
        )
        return None
