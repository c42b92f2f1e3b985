"""The scoring stream through the real broker, Postgres and S3: a training-data reference computed from
digit images (what the reference job's command does), then predictions of held-out digits (low scores, no
drift) and of noisy or darkened digits (high scores, a drift report that flags them); malformed events
are dead-lettered, replays change nothing, reviews give champion and shadow quality."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest
from prometheus_client import REGISTRY

from cvloop.demo.digits import png
from cvloop.demo.polling import WAIT_S, until
from cvloop.demo.scoring import (
    Deployment,
    add_image,
    add_unreadable_image,
    answer,
    classification_deployment,
    prediction_of,
)
from cvloop.stack.postgres import Postgres
from cvloop.stack.settings import StackSettings
from schemas.deadletter import DeadLetter
from schemas.events import (
    JobKind,
    MultipleTestingCorrection,
    PredictionLogged,
    PredictionReviewed,
)
from schemas.features import IMAGE_FEATURES
from schemas.object_keys import ObjectKind
from schemas.topics import Topic
from schemas.vocabulary import TargetType
from services.common.db.repositories import deployments, jobs, predicted_assets, training_references
from services.common.db.repositories.drift_reports import list_drift_reports
from services.common.domain.deployments import TrainingReference
from services.common.domain.scoring import DriftReport
from services.common.kafka.consumer import create_consumer
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore
from services.scoring.drift import DriftWindow
from services.scoring.reference_job import DETECTOR, ReferenceFailed
from services.scoring.service import ScoringService
from tests.integration.scoring_fixtures import compute_reference_like_its_job, digit_sets

STALLED_AGENT = "cvloop-scoring/score-predictions"
TRAINING = 1000
HELD_OUT = 300
DRIFT_EVERY = 100


@pytest.fixture(scope="module")
def module_settings(postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings) -> Settings:
    return postgres_settings.model_copy(
        update={
            "scoring_drift_every": DRIFT_EVERY,
            "scoring_drift_window": 200,
            "scoring_drift_min_window": 100,
            "scoring_drift_interval_s": 3600.0,  # count-triggered only: the reports below are deterministic
            # At most a 1% chance per report of flagging drift where there is none (family-wise).
            "scoring_drift_alpha": 0.01,
            "scoring_drift_correction": MultipleTestingCorrection.BONFERRONI,
            "scoring_reference_refresh_s": 0.5,
            "scoring_batch_wait_s": 0.1,
        }
    )


@pytest.fixture(scope="module")
async def service(module_settings: Settings) -> AsyncIterator[ScoringService]:
    service = ScoringService(module_settings)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture(scope="module")
def digits() -> dict[str, list[tuple[np.ndarray, int]]]:
    return digit_sets(TRAINING, HELD_OUT)


async def _scores(pool: asyncpg.Pool, ids: list[UUID]) -> dict[UUID, float] | None:
    rows = await pool.fetch(
        "SELECT prediction_id, outlier_score FROM prediction_scores WHERE prediction_id = ANY($1::uuid[])"
        " AND outlier_score IS NOT NULL",
        ids,
    )
    return {r["prediction_id"]: r["outlier_score"] for r in rows} if len(rows) == len(ids) else None


async def _reports(pool: asyncpg.Pool, d: Deployment, count: int) -> list[DriftReport] | None:
    reports = await list_drift_reports(pool, d.project_id, d.deployment_id)
    return sorted(reports, key=lambda r: r.window_end) if len(reports) >= count else None


async def _publish(producer: EventProducer, events: list[PredictionLogged]) -> None:
    await asyncio.gather(*(producer.publish(Topic.PREDICTIONS, e) for e in events))


@pytest.fixture(scope="module")
async def ready(
    service: ScoringService,
    pool: asyncpg.Pool,
    producer: EventProducer,
    store: ObjectStore,
    module_settings: Settings,
    digits: dict[str, list[tuple[np.ndarray, int]]],
) -> Deployment:
    """A deployment whose reference was computed by a reference job from the training digits."""
    d = await classification_deployment(pool)

    async def upload(pixels: np.ndarray) -> None:
        await add_image(pool, store, module_settings, d.project_id, d.dataset_version_id, png(pixels))

    for start in range(0, TRAINING, 100):
        await asyncio.gather(*(upload(p) for p, _ in digits["training"][start : start + 100]))
    lines = await compute_reference_like_its_job(pool, store, module_settings, d)
    assert f"features of {TRAINING} training images computed" in lines
    deployment = await deployments.get_deployment(pool, d.project_id, d.deployment_id)
    assert deployment is not None and deployment.reference_status == "ready", deployment
    return d


async def test_a_reference_fails_with_the_reason_when_an_image_is_not_one(
    pool: asyncpg.Pool, store: ObjectStore, module_settings: Settings
) -> None:
    d = await classification_deployment(pool)
    for data in (b"not an image", b"not an image either"):
        await add_unreadable_image(pool, store, d, data)
    with pytest.raises(ReferenceFailed) as failed:  # the runner fails the run and the reference with it
        await compute_reference_like_its_job(pool, store, module_settings, d)
    reason = str(failed.value)
    assert reason.startswith("asset images/") and "not a JPEG, PNG or WebP image" in reason


async def test_training_like_digits_score_low_and_do_not_drift(
    ready: Deployment, pool: asyncpg.Pool, producer: EventProducer, digits: dict[str, Any]
) -> None:
    events = [prediction_of(ready.deployment_id, p, label) for p, label in digits["held_out"]]
    await _publish(producer, events)

    scores = await until(lambda: _scores(pool, [e.prediction_id for e in events]), "held-out scores")
    values = np.array(list(scores.values()))
    assert 0.0 <= values.min() and values.max() <= 1.0
    assert np.median(values) < 0.7  # calibrated: about uniform on data like the training data
    assert np.mean(values >= 0.99) < 0.05

    reports = await until(lambda: _reports(pool, ready, HELD_OUT // DRIFT_EVERY), "drift reports")
    assert [r.window_size for r in reports] == [100, 200, 200]
    assert not any(r.drift_detected for r in reports)
    assert all(r.reference_size == TRAINING for r in reports)


async def test_shifted_digits_score_high_and_drift(
    ready: Deployment, pool: asyncpg.Pool, producer: EventProducer, digits: dict[str, Any]
) -> None:
    await until(lambda: _reports(pool, ready, HELD_OUT // DRIFT_EVERY), "the held-out reports first")
    events = [prediction_of(ready.deployment_id, p, label) for p, label in digits["shifted"]]
    await _publish(producer, events)

    scores = await until(lambda: _scores(pool, [e.prediction_id for e in events]), "shifted scores")
    values = np.array(list(scores.values()))
    assert np.median(values) > 0.95

    reports = await until(lambda: _reports(pool, ready, 2 * HELD_OUT // DRIFT_EVERY), "drift reports")
    last = reports[-1]
    assert last.drift_detected and last.window_size == 200
    drifted = {f.feature for f in last.features if f.drifted}
    assert {"brightness", "sharpness"} <= drifted, last.features
    assert _metric("cvloop_scoring_drift_detected", deployment=str(ready.deployment_id), feature="any") == 1.0


async def test_replayed_predictions_keep_their_scores_and_rows(
    ready: Deployment, pool: asyncpg.Pool, producer: EventProducer, digits: dict[str, Any]
) -> None:
    events = [prediction_of(ready.deployment_id, p, label) for p, label in digits["held_out"][:50]]
    await _publish(producer, events)
    first = await until(lambda: _scores(pool, [e.prediction_id for e in events]), "scores")
    count = await pool.fetchval(
        "SELECT count(*) FROM prediction_scores WHERE deployment_id = $1", ready.deployment_id
    )

    await _publish(producer, events)  # redelivered: same event and prediction ids
    marker = prediction_of(ready.deployment_id, digits["held_out"][60][0], 1)
    await _publish(producer, [marker])  # once the marker is scored, the replay before it was handled
    await until(lambda: _scores(pool, [marker.prediction_id]), "the marker's score")

    assert await _scores(pool, [e.prediction_id for e in events]) == first
    after = await pool.fetchval(
        "SELECT count(*) FROM prediction_scores WHERE deployment_id = $1", ready.deployment_id
    )
    assert after == count + 1


async def test_a_prediction_handed_over_twice_in_one_batch_adds_one_row_to_its_drift_window(
    ready: Deployment, producer: EventProducer, service: ScoringService, digits: dict[str, Any]
) -> None:
    """A worker taking partitions over is handed their records again after its seek to the committed
    offsets while the first copies may still wait in its batch (issue 16): each prediction counts once."""
    assert service.stream is not None
    windows, key = service.stream.windows, str(ready.deployment_id).encode()

    def window() -> DriftWindow | None:
        saved = windows.get(key)
        return DriftWindow.from_bytes(saved) if saved else None

    async def holding(prediction: PredictionLogged) -> DriftWindow | None:
        current = window()
        found = current is not None and prediction.predicted_at.timestamp() in current.predicted_at
        return current if found else None

    start = window()
    events = [prediction_of(ready.deployment_id, p, label) for p, label in digits["held_out"][100:120]]
    await _publish(producer, events + events)  # together: the copies share the batches of the originals
    marker = prediction_of(ready.deployment_id, digits["held_out"][121][0], 1)
    await _publish(producer, [marker])  # in the window after every copy: one partition, in order
    after = await until(lambda: holding(marker), "the marker in the drift window")

    assert after.total == (start.total if start else 0) + len(events) + 1


async def test_malformed_events_are_dead_lettered_and_the_stream_goes_on(
    ready: Deployment,
    pool: asyncpg.Pool,
    producer: EventProducer,
    module_settings: Settings,
    digits: dict[str, Any],
) -> None:
    key = str(ready.deployment_id).encode()
    await producer.publish_bytes(Topic.PREDICTIONS, b'{"type": "prediction.logged", "nonsense": 1}', key=key)
    lacking = prediction_of(ready.deployment_id, digits["held_out"][70][0], 1)
    lacking = lacking.model_copy(update={"features": {"brightness": 0.5}})
    after = prediction_of(ready.deployment_id, digits["held_out"][71][0], 2)
    await producer.publish(Topic.PREDICTIONS, lacking)
    await producer.publish(Topic.PREDICTIONS, after)

    await until(lambda: _scores(pool, [after.prediction_id]), "the next valid prediction's score")
    letters = await _dead_letters(module_settings, ready.deployment_id, 2)
    errors = sorted(letter.error for letter in letters)
    assert any("features.contrast is missing" in e for e in errors), errors
    assert any(letter.error_type == "validation" for letter in letters), errors
    assert await _scores(pool, [lacking.prediction_id]) is None


async def test_predicted_asset_gets_its_score_and_reviews_give_quality(
    ready: Deployment,
    pool: asyncpg.Pool,
    producer: EventProducer,
    service: ScoringService,
    digits: dict[str, Any],
) -> None:
    # One asset recorded before its prediction is scored, the others after: each gets its score.
    events = [
        prediction_of(ready.deployment_id, p, label, shadow_digit=label if i % 2 else (label + 1) % 10)
        for i, (p, label) in enumerate(digits["held_out"][100:110])
    ]
    await predicted_assets.insert_prediction(pool, ready.project_id, events[0])
    await _publish(producer, events)
    scores = await until(lambda: _scores(pool, [e.prediction_id for e in events]), "scores")
    for event in events[1:]:
        await predicted_assets.insert_prediction(pool, ready.project_id, event)
    for event in events:
        stored = await predicted_assets.get_prediction(pool, ready.project_id, event.prediction_id)
        assert stored is not None and stored.outlier_score == scores[event.prediction_id]

    # Reviews: the champion was right on all ten, the shadow on every other one.
    for event, (_, label) in zip(events, digits["held_out"][100:110], strict=True):
        await predicted_assets.review(
            pool, ready.project_id, event.prediction_id, answer(label, 1.0), reviewed_by="t"
        )
        await producer.publish(
            Topic.REVIEWS,
            PredictionReviewed(
                deployment_id=ready.deployment_id,
                prediction_id=event.prediction_id,
                review=answer(label, 1.0),
                reviewed_by="t",
            ),
        )

    labels = {"deployment": str(ready.deployment_id), "metric": "reviewed"}

    async def all_measured() -> bool | None:
        return True if _metric("cvloop_scoring_quality", role="champion", **labels) == 10 else None

    await until(all_measured, "quality over the ten reviews")
    deployment = str(ready.deployment_id)
    assert _metric("cvloop_scoring_quality", deployment=deployment, role="champion", metric="accuracy") == 1.0
    assert _metric("cvloop_scoring_quality", deployment=deployment, role="shadow", metric="accuracy") == 0.5
    shadow = {"deployment": deployment, "role": "shadow"}
    assert _metric("cvloop_scoring_latency_seconds", **shadow, percentile="95") == 0.02


async def test_a_reference_that_cannot_be_loaded_fails_its_training_data_and_the_others_are_scored(
    ready: Deployment,
    pool: asyncpg.Pool,
    producer: EventProducer,
    store: ObjectStore,
    service: ScoringService,
    digits: dict[str, Any],
) -> None:
    broken = await classification_deployment(pool)
    await deployments.set_training_data(
        pool, broken.project_id, broken.deployment_id, broken.dataset_version_id
    )
    _, run, _ = await jobs.create_job(
        pool,
        broken.project_id,
        JobKind.REFERENCE,
        target_type=TargetType.DEPLOYMENT,
        target_id=broken.deployment_id,
    )
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.REFERENCES, b"not a reference")
    reference = TrainingReference(
        id=uuid4(),
        project_id=broken.project_id,
        deployment_id=broken.deployment_id,
        dataset_version_id=broken.dataset_version_id,
        job_run_id=run.id,
        object_key=stored.key,
        detector=DETECTOR,
        feature_names=list(IMAGE_FEATURES),
        training_size=2,
        sample_size=2,
    )
    assert await training_references.make_reference_ready(pool, reference)

    unscorable = prediction_of(broken.deployment_id, digits["held_out"][80][0], 1)
    scorable = prediction_of(ready.deployment_id, digits["held_out"][81][0], 1)
    await _publish(producer, [unscorable])
    await _publish(producer, [scorable])

    await until(lambda: _scores(pool, [scorable.prediction_id]), "the other deployment's score")
    deployment = await deployments.get_deployment(pool, broken.project_id, broken.deployment_id)
    assert deployment is not None and deployment.reference_status == "failed"
    assert deployment.reference_reason is not None and stored.key in deployment.reference_reason
    assert await _scores(pool, [unscorable.prediction_id]) is None
    assert await service.ready() is None


async def test_scoring_rides_out_a_postgres_outage_and_scores_every_prediction_once(
    ready: Deployment,
    pool: asyncpg.Pool,
    producer: EventProducer,
    service: ScoringService,
    postgres_settings: StackSettings,
    digits: dict[str, Any],
) -> None:
    if postgres_settings.is_external("postgres"):
        pytest.skip("DATABASE_URL points at an external server: the test does not stop it")
    events = [prediction_of(ready.deployment_id, p, label) for p, label in digits["held_out"][250:290]]
    before, during = events[:20], events[20:]
    scored = _metric("cvloop_scoring_events_total", topic="predictions", outcome="scored") or 0.0
    await _publish(producer, before)
    await until(lambda: _scores(pool, [e.prediction_id for e in before]), "scores before the outage")

    postgres = Postgres(postgres_settings)
    await asyncio.to_thread(postgres.stop)
    try:
        await _publish(producer, during)  # consumed while Postgres is down

        async def stalled() -> bool | None:
            return True if _metric("cvloop_consumer_stalled", consumer=STALLED_AGENT) == 1.0 else None

        await until(stalled, "the scoring agent saying it is stalled")
        assert await service.ready() is not None
    finally:
        await asyncio.to_thread(postgres.start)
    await pool.expire_connections()  # the test's own connections died with the server

    ids = [e.prediction_id for e in events]
    await until(lambda: _scores(pool, ids), "every prediction scored after the outage")
    rows = await pool.fetchval(
        "SELECT count(*) FROM prediction_scores WHERE prediction_id = ANY($1::uuid[])", ids
    )
    assert rows == len(events)
    after = _metric("cvloop_scoring_events_total", topic="predictions", outcome="scored")
    assert after == scored + len(events)  # each scored once: none skipped, none counted again

    async def resumed() -> bool | None:
        return True if await service.ready() is None else None

    await until(resumed, "scoring ready again")
    assert _metric("cvloop_consumer_stalled", consumer=STALLED_AGENT) == 0.0


async def test_a_restarted_worker_resumes_its_drift_windows(
    ready: Deployment,
    pool: asyncpg.Pool,
    producer: EventProducer,
    service: ScoringService,
    module_settings: Settings,
    digits: dict[str, Any],
) -> None:
    reported = len(await list_drift_reports(pool, ready.project_id, ready.deployment_id))
    await service.stop()
    restarted = ScoringService(module_settings)
    await restarted.start()
    try:
        events = [prediction_of(ready.deployment_id, p, label) for p, label in digits["held_out"][150:250]]
        await _publish(producer, events)
        reports = await until(lambda: _reports(pool, ready, reported + 1), "a report after the restart")
    finally:
        await restarted.stop()
    # The window was recovered from its changelog: it still holds the predictions before the restart.
    assert reports[-1].window_size == 200


def _metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def _dead_letters(settings: Settings, deployment_id: UUID, count: int) -> list[DeadLetter]:
    consumer = create_consumer(settings, f"test-{uuid4()}", Topic.DEADLETTER)
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(found) < count:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        letter = DeadLetter.from_bytes(record.value)
                        if (
                            letter.consumer == "cvloop-scoring"
                            and letter.source_key == str(deployment_id).encode()
                        ):
                            found.append(letter)
    finally:
        await consumer.stop()
    return found
