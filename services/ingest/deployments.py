"""Finding the deployments a batch of Kafka messages names, once per batch: events carry only the
deployment id, so its project comes from Postgres too."""

from __future__ import annotations

import time
from collections.abc import Iterable
from uuid import UUID

from services.common.db.repositories.base import Db
from services.common.db.repositories.deployments import get_deployment, project_of
from services.common.domain.deployments import Deployment


async def deployments_by_id(db: Db, deployment_ids: Iterable[UUID]) -> dict[UUID, Deployment]:
    """The deployments that exist among `deployment_ids` (a missing one is left out)."""
    found: dict[UUID, Deployment] = {}
    for deployment_id in set(deployment_ids):
        project_id = await project_of(db, deployment_id)
        deployment = await get_deployment(db, project_id, deployment_id) if project_id else None
        if deployment is not None:
            found[deployment_id] = deployment
    return found


class UnknownDeployment(LookupError):
    def __init__(self, deployment_id: UUID) -> None:
        super().__init__(f"deployment_id: deployment {deployment_id} does not exist")


class RecentDeployments:
    """The monitor endpoint's deployments, each read at most every `remember_s`: a threshold or shadow
    change reaches it within that long. Missing ones are not remembered."""

    def __init__(self, remember_s: float, capacity: int = 10_000) -> None:
        self.remember_s = remember_s
        self.capacity = capacity
        self._read: dict[tuple[UUID, UUID], tuple[float, Deployment]] = {}

    async def get(self, db: Db, project_id: UUID, deployment_id: UUID) -> Deployment | None:
        now = time.monotonic()
        remembered = self._read.get((project_id, deployment_id))
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        deployment = await get_deployment(db, project_id, deployment_id)
        if deployment is not None and self.remember_s > 0:
            if len(self._read) >= self.capacity:
                self._read.clear()
            self._read[(project_id, deployment_id)] = (now + self.remember_s, deployment)
        return deployment
