"""Finding the deployments a batch of Kafka messages names, once per batch: events carry only the
deployment id, so its project comes from Postgres too."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from services.common.db.repositories.base import Db
from services.common.db.repositories.deployments import Deployment, get_deployment, project_of


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
