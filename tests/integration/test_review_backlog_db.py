"""The api's review backlog gauge counts predicted assets by deployment and status in the real Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import numpy as np
import pytest
from prometheus_client import REGISTRY

from cvloop.demo.scoring import answer, classification_deployment, prediction_of
from services.api.review_backlog import ShownBacklog
from services.common.db.pool import open_pool
from services.common.db.repositories import predicted_assets
from services.common.settings import Settings


@pytest.fixture(scope="module")
async def pool(postgres_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(postgres_settings.database_url)
    yield pool
    await pool.close()


def _shown(deployment: str, status: str) -> float | None:
    labels = {"deployment": deployment, "status": status}
    return REGISTRY.get_sample_value("cvloop_api_predicted_assets", labels)


async def test_the_backlog_counts_each_status_of_the_deployment(pool: asyncpg.Pool) -> None:
    d = await classification_deployment(pool)
    images = [np.full((8, 8, 3), seed, dtype=np.uint8) for seed in range(3)]
    events = [prediction_of(d.deployment_id, pixels, digit) for digit, pixels in enumerate(images)]
    for event in events:
        assert await predicted_assets.insert_prediction(pool, d.project_id, event)
    await predicted_assets.review(pool, d.project_id, events[0].prediction_id, answer(4), reviewed_by="test")

    backlog = ShownBacklog()
    await backlog.refresh(pool)

    deployment = str(d.deployment_id)
    assert _shown(deployment, "TO_REVIEW") == 2
    assert _shown(deployment, "REVIEWED") == 1
    assert _shown(deployment, "SUBMITTED") == 0
