"""The review backlog on /metrics: every deployment's predicted assets by review status, counted in
Postgres every few seconds by each api replica (they all report the same counts; dashboards take the max)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from uuid import UUID

import asyncpg
from prometheus_client import Gauge

from schemas.vocabulary import ReviewStatus
from services.common.db.repositories import predicted_assets

from . import metrics

logger = logging.getLogger(__name__)

REFRESH_S = 15.0  # Prometheus' usual scrape interval: fresher counts would not be seen

Labels = tuple[str, str]  # (deployment, status)


def backlog_samples(counts: Mapping[tuple[UUID, ReviewStatus], int]) -> dict[Labels, int]:
    """Every status of every deployment that has predicted assets, zero where none has that status, so
    a drained queue reads 0 rather than disappearing."""
    deployments = {deployment for deployment, _ in counts}
    return {
        (str(deployment), status.value): counts.get((deployment, status), 0)
        for deployment in deployments
        for status in ReviewStatus
    }


class ShownBacklog:
    """The gauge's label sets: set to the latest counts, and removed once their deployment is gone."""

    def __init__(self, gauge: Gauge = metrics.PREDICTED_ASSETS) -> None:
        self.gauge = gauge
        self.shown: set[Labels] = set()

    def show(self, samples: Mapping[Labels, int]) -> None:
        for labels, value in samples.items():
            self.gauge.labels(*labels).set(value)
        for labels in self.shown - samples.keys():
            self.gauge.remove(*labels)
        self.shown = set(samples)

    async def refresh(self, pool: asyncpg.Pool) -> None:
        self.show(backlog_samples(await predicted_assets.count_by_deployment_and_status(pool)))

    async def refresh_forever(self, pool: asyncpg.Pool) -> None:
        while True:
            try:
                await self.refresh(pool)
            except (OSError, asyncpg.PostgresError):
                # The last counts stay shown; /readyz reports Postgres being unreachable.
                logger.warning("could not count the review backlog; trying again later", exc_info=True)
            await asyncio.sleep(REFRESH_S)
