"""The labels of the model versions monitored predictions name, read once each: a model version's
labelmap never changes, so only ones not read yet (or not found) cost a query."""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from services.common.db.repositories.base import Db
from services.common.db.repositories.registry import model_version_labels


class ModelVersionLabels:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._known: dict[tuple[UUID, UUID], list[str] | None] = {}

    async def of(self, db: Db, project_id: UUID, ids: Collection[UUID]) -> dict[UUID, list[str] | None]:
        """The labels (None: no labelmap) of those of `ids` that are model versions of the project."""
        known = {i: self._known[(project_id, i)] for i in ids if (project_id, i) in self._known}
        unread = set(ids) - set(known)
        if unread:
            found = await model_version_labels(db, project_id, unread)
            known.update(found)
            if len(self._known) + len(found) > self.capacity:
                self._known.clear()
            self._known.update({(project_id, i): labels for i, labels in found.items()})
        return known
