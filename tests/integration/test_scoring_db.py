"""Scoring's Postgres effects: an outlier score reaches its predicted asset whichever is written first,
the first score stored wins, and drift reports are stored once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import numpy as np
import pytest

from cvloop.demo.scoring import classification_deployment, prediction_of
from schemas.events import DriftReported, FeatureDrift, MultipleTestingCorrection
from services.common.db.pool import open_pool
from services.common.db.repositories import predicted_assets
from services.common.db.repositories.drift_reports import insert_drift_report, list_drift_reports
from services.common.db.repositories.prediction_scores import record_outlier_scores
from services.common.domain.scoring import Score, StoredScore
from services.common.settings import Settings


@pytest.fixture(scope="module")
async def pool(postgres_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(postgres_settings.database_url)
    yield pool
    await pool.close()


def _pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)


async def test_score_reaches_the_asset_whichever_comes_first(pool: asyncpg.Pool) -> None:
    d = await classification_deployment(pool)
    asset_first = prediction_of(d.deployment_id, _pixels(1), 1)
    score_first = prediction_of(d.deployment_id, _pixels(2), 2)
    reference = uuid4()

    await predicted_assets.insert_prediction(pool, d.project_id, asset_first)
    await record_outlier_scores(
        pool,
        d.project_id,
        d.deployment_id,
        reference,
        [Score(asset_first.prediction_id, 0.25), Score(score_first.prediction_id, 0.75)],
    )
    await predicted_assets.insert_prediction(pool, d.project_id, score_first)

    for event, score in ((asset_first, 0.25), (score_first, 0.75)):
        stored = await predicted_assets.get_prediction(pool, d.project_id, event.prediction_id)
        assert stored is not None and stored.outlier_score == score


async def test_first_score_wins_and_replays_store_nothing_new(pool: asyncpg.Pool) -> None:
    d = await classification_deployment(pool)
    event = prediction_of(d.deployment_id, _pixels(3), 3)
    first = await record_outlier_scores(
        pool, d.project_id, d.deployment_id, uuid4(), [Score(event.prediction_id, 0.4)]
    )
    again = await record_outlier_scores(
        pool,
        d.project_id,
        d.deployment_id,
        uuid4(),
        [Score(event.prediction_id, 0.9), Score(event.prediction_id, 0.9)],
    )
    assert first == {event.prediction_id: StoredScore(0.4, new=True)}
    assert again == {event.prediction_id: StoredScore(0.4, new=False)}
    count = await pool.fetchval(
        "SELECT count(*) FROM prediction_scores WHERE deployment_id = $1", d.deployment_id
    )
    assert count == 1


async def test_a_score_for_an_unknown_deployment_is_refused(pool: asyncpg.Pool) -> None:
    d = await classification_deployment(pool)
    with pytest.raises(LookupError):
        await record_outlier_scores(pool, d.project_id, uuid4(), uuid4(), [Score(uuid4(), 0.5)])


async def test_drift_report_is_stored_once(pool: asyncpg.Pool) -> None:
    d = await classification_deployment(pool)
    now = datetime.now(UTC)
    report = DriftReported(
        deployment_id=d.deployment_id,
        reference_id=uuid4(),
        window_start=now,
        window_end=now,
        window_size=100,
        reference_size=1000,
        correction=MultipleTestingCorrection.BONFERRONI,
        alpha=0.05,
        features=[FeatureDrift(feature="brightness", statistic=0.3, p_value=0.001, drifted=True)],
        drift_detected=True,
    )
    assert await insert_drift_report(pool, d.project_id, report)
    assert not await insert_drift_report(pool, d.project_id, report)
    (stored,) = await list_drift_reports(pool, d.project_id, d.deployment_id)
    assert stored.event_id == report.event_id and stored.features == report.features
