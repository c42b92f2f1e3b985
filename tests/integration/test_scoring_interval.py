"""Drift reports on a timer: a deployment whose predictions do not reach SCORING_DRIFT_EVERY still gets
a report SCORING_DRIFT_INTERVAL_S after its last one, and predictions logged before its reference was
ready get no score."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest

from cvloop.demo.digits import digit_images, feature_matrix
from cvloop.demo.scoring import classification_deployment, prediction_of
from schemas.features import IMAGE_FEATURES
from schemas.object_keys import ObjectKind
from schemas.topics import Topic
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments
from services.common.db.repositories.drift_reports import list_drift_reports
from services.common.db.repositories.training_references import make_reference_ready
from services.common.domain.deployments import TrainingReference
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore
from services.scoring.reference import build_reference
from services.scoring.service import ScoringService

WAIT_S = 120.0


@pytest.fixture(scope="module")
async def service(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings
) -> AsyncIterator[Settings]:
    settings = postgres_settings.model_copy(
        update={
            "scoring_drift_every": 10_000,
            "scoring_drift_min_window": 20,
            "scoring_drift_interval_s": 1.0,
        }
    )
    scoring = ScoringService(settings)
    await scoring.start()
    yield settings
    await scoring.stop()


async def test_a_report_comes_after_the_interval_and_earlier_predictions_get_no_score(
    service: Settings,
) -> None:
    pool: asyncpg.Pool = await open_pool(service.database_url)
    try:
        d = await classification_deployment(pool)
        images = digit_images()
        reference = build_reference(feature_matrix(images[:800]), sample_size=800)
        store = ObjectStore.from_settings(service)
        stored = await asyncio.to_thread(store.put_bytes, ObjectKind.REFERENCES, reference.to_bytes())
        await deployments.set_training_data(pool, d.project_id, d.deployment_id, d.dataset_version_id)
        assert await make_reference_ready(
            pool,
            TrainingReference(
                id=uuid.uuid4(),
                project_id=d.project_id,
                deployment_id=d.deployment_id,
                dataset_version_id=d.dataset_version_id,
                job_run_id=uuid.uuid4(),
                object_key=stored.key,
                detector="mahalanobis-ledoit-wolf",
                feature_names=list(IMAGE_FEATURES),
                training_size=800,
                sample_size=800,
            ),
        )
        early = prediction_of(d.deployment_id, images[900], 1)
        early = early.model_copy(update={"occurred_at": datetime.now(UTC) - timedelta(hours=1)})
        events = [prediction_of(d.deployment_id, images[i], i % 10) for i in range(1000, 1030)]
        async with EventProducer.from_settings(service) as producer:
            for event in [early, *events]:
                await producer.publish(Topic.PREDICTIONS, event)

        reports = []
        for _ in range(int(WAIT_S / 0.2)):
            reports = await list_drift_reports(pool, d.project_id, d.deployment_id)
            if reports:
                break
            await asyncio.sleep(0.2)
        assert reports and reports[0].window_size == len(events)
        scored = await pool.fetch(
            "SELECT prediction_id FROM prediction_scores WHERE deployment_id = $1", d.deployment_id
        )
        assert {r["prediction_id"] for r in scored} == {e.prediction_id for e in events}
        assert np.isfinite([f.p_value for f in reports[0].features]).all()
    finally:
        await pool.close()
