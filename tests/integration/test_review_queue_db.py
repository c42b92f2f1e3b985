"""The review queue in the real Postgres: the stored acquisition score and queue key equal the domain's
formulas, the queue pages in their order, late outlier scores and new weights re-rank it, and
near-duplicates are one entry with their count."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import numpy as np
import pytest

from cvloop.demo.scoring import answer, classification_deployment, prediction_of
from schemas.api.deployments import ReviewQueueSettings
from schemas.events import PredictionLogged, RoleResult
from schemas.vocabulary import PredictionOrder, ReviewStatus
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments, predicted_assets
from services.common.db.repositories.prediction_scores import record_outlier_scores
from services.common.domain.acquisition import acquisition_score, audit_draw, queue_key
from services.common.domain.predictions import PredictionFilter
from services.common.domain.scoring import Score
from services.common.settings import Settings
from tests.samples import hashable_picture

TO_REVIEW = PredictionFilter(status=ReviewStatus.TO_REVIEW)


@pytest.fixture(scope="module")
async def pool(postgres_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(postgres_settings.database_url)
    yield pool
    await pool.close()


def logged(
    deployment_id: uuid.UUID, seed: int, confidence: float, shadow_digit: int | None
) -> PredictionLogged:
    event = prediction_of(deployment_id, hashable_picture(seed), seed % 10, shadow_digit=shadow_digit)
    champion = RoleResult(prediction=answer(seed % 10, confidence), latency_ms=5.0)
    return event.model_copy(update={"champion": champion})


async def queue(
    pool: asyncpg.Pool, project_id: uuid.UUID, deployment_id: uuid.UUID
) -> list[tuple[uuid.UUID, int]]:
    found = await predicted_assets.list_queue(pool, project_id, deployment_id, TO_REVIEW, limit=100)
    return [(asset.prediction_id, duplicates) for asset, duplicates in found]


async def test_stored_scores_follow_the_domain_and_order_the_queue(pool: asyncpg.Pool) -> None:
    d = await classification_deployment(pool)
    rng = np.random.default_rng(3)
    events = [
        logged(
            d.deployment_id, seed, float(rng.uniform(0.5, 1.0)), seed % 10 if seed % 3 else (seed + 1) % 10
        )
        for seed in range(40)
    ]
    assert len(await predicted_assets.insert_predictions(pool, [(d.project_id, e) for e in events])) == 40
    outliers = {e.prediction_id: float(rng.uniform()) for e in events[::2]}  # half scored, late
    for prediction_id, score in outliers.items():
        assert await predicted_assets.set_outlier_score(pool, d.project_id, prediction_id, score)

    async def check(settings: ReviewQueueSettings) -> None:
        expected = {}
        for e in events:
            stored = await predicted_assets.get_prediction(pool, d.project_id, e.prediction_id)
            assert stored is not None and stored.uncertainty is not None
            assert stored.uncertainty == pytest.approx(
                1 - (e.champion.prediction.scores[0] - e.champion.prediction.scores[1])
            )
            assert stored.disagreement == (
                0.0 if e.shadow.prediction.classes[0] == str(int(e.champion.prediction.classes[0])) else 1.0
            )
            score = acquisition_score(
                stored.uncertainty, outliers.get(e.prediction_id), stored.disagreement, settings
            )
            assert stored.acquisition_score == pytest.approx(score)
            expected[e.prediction_id] = queue_key(e.prediction_id, score, settings.audit_fraction)
        ranked = sorted(expected, key=lambda p: (-expected[p], p))
        assert [p for p, _ in await queue(pool, d.project_id, d.deployment_id)] == ranked

    await check(ReviewQueueSettings())
    reweighted = ReviewQueueSettings(
        uncertainty_weight=0.2, outlier_weight=5.0, disagreement_weight=0.0, audit_fraction=0.3
    )
    assert await predicted_assets.set_review_queue(pool, d.project_id, d.deployment_id, reweighted)
    assert (await deployments.get_deployment(pool, d.project_id, d.deployment_id)).review_queue == reweighted  # type: ignore[union-attr]
    await check(reweighted)
    # Another project cannot change this deployment's queue.
    assert not await predicted_assets.set_review_queue(
        pool, uuid.uuid4(), d.deployment_id, ReviewQueueSettings()
    )


async def test_the_database_draws_the_audit_slice_as_the_domain_does(pool: asyncpg.Pool) -> None:
    ids = [uuid.uuid4() for _ in range(500)]
    rows = await pool.fetch("SELECT id, cvloop_audit_draw(id) AS draw FROM unnest($1::uuid[]) AS i(id)", ids)
    assert {r["id"]: r["draw"] for r in rows} == pytest.approx({i: audit_draw(i) for i in ids})


async def test_near_duplicates_are_one_queue_entry_with_their_count(pool: asyncpg.Pool) -> None:
    d = await classification_deployment(pool)
    await predicted_assets.set_review_queue(
        pool, d.project_id, d.deployment_id, ReviewQueueSettings(audit_fraction=0.0)
    )
    base = hashable_picture(11)
    copies = [
        base,
        np.clip(base.astype(int) + 5, 0, 255).astype(np.uint8),
        np.clip(base.astype(int) - 4, 0, 255).astype(np.uint8),
    ]
    events = [
        prediction_of(d.deployment_id, pixels, 1).model_copy(
            update={"champion": RoleResult(prediction=answer(1, confidence), latency_ms=5.0)}
        )
        for pixels, confidence in zip(copies, (0.9, 0.6, 0.99), strict=True)
    ]
    other = logged(d.deployment_id, 12, 0.95, None)
    assert len({e.image_dhash for e in events}) == 1 and other.image_dhash != events[0].image_dhash
    await predicted_assets.insert_predictions(pool, [(d.project_id, e) for e in [*events, other]])

    # The most uncertain copy stands for the three.
    assert await queue(pool, d.project_id, d.deployment_id) == [
        (events[1].prediction_id, 3),
        (other.prediction_id, 1),
    ]
    assert (
        await predicted_assets.count_predictions(
            pool, d.project_id, d.deployment_id, TO_REVIEW, distinct_images=True
        )
        == 2
    )
    assert await predicted_assets.count_predictions(pool, d.project_id, d.deployment_id, TO_REVIEW) == 4
    # Reviewed, it leaves the queue; its copies come back as one entry of two.
    await predicted_assets.review(pool, d.project_id, events[1].prediction_id, answer(1), reviewed_by="test")
    assert await queue(pool, d.project_id, d.deployment_id) == [
        (events[0].prediction_id, 2),
        (other.prediction_id, 1),
    ]
    newest = await predicted_assets.list_queue(
        pool, d.project_id, d.deployment_id, TO_REVIEW, order=PredictionOrder.NEWEST
    )
    assert len(newest) == 2


async def test_the_outlier_score_ranks_whichever_comes_first(pool: asyncpg.Pool) -> None:
    """The scoring stream's path: a score recorded before its asset is taken at insert, one after it
    updates the asset; the acquisition score counts it either way."""
    d = await classification_deployment(pool)
    asset_first, score_first = logged(d.deployment_id, 21, 0.7, None), logged(d.deployment_id, 22, 0.7, None)
    await predicted_assets.insert_prediction(pool, d.project_id, asset_first)
    scores = [Score(asset_first.prediction_id, 0.25), Score(score_first.prediction_id, 0.75)]
    await record_outlier_scores(pool, d.project_id, d.deployment_id, uuid.uuid4(), scores)
    await predicted_assets.insert_prediction(pool, d.project_id, score_first)
    for event, outlier in ((asset_first, 0.25), (score_first, 0.75)):
        stored = await predicted_assets.get_prediction(pool, d.project_id, event.prediction_id)
        assert stored is not None and stored.uncertainty == pytest.approx(1 - (0.7 - 0.3))
        expected = acquisition_score(stored.uncertainty, outlier, None, ReviewQueueSettings())
        assert stored.acquisition_score == pytest.approx(expected)
