"""A drifting stream retrains a deployment with no submission count reached: scoring and the pipeline run
together on the real broker, Postgres and S3; the deployment's reference is computed from training digits,
one asset is submitted (far below its threshold), then shifted digits are predicted. Scoring's drift
reports on `scores` make the pipeline request exactly one training, by the drift rule, with its figures
on the request, the experiment and the deployment's settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from cvloop.demo.digits import png
from cvloop.demo.polling import until
from cvloop.demo.scoring import Deployment, add_image, prediction_of
from schemas.events import DriftReported, MultipleTestingCorrection, TrainingRequested
from schemas.topics import Topic
from schemas.triggers import DriftRule, TriggerPolicy
from schemas.vocabulary import TriggerRule
from services.common.db.repositories import deployment_figures, experiments
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore
from services.pipeline.counting import CycleCount
from services.pipeline.service import PipelineService
from services.scoring.service import ScoringService
from tests.integration.pipeline_fixtures import events_of, pipeline_deployment, submitted
from tests.integration.scoring_fixtures import compute_reference_like_its_job, digit_sets

TRAINING = 1000
SHIFTED = 300
DRIFT_EVERY = 100


@pytest.fixture(scope="module")
def module_settings(postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings) -> Settings:
    return postgres_settings.model_copy(
        update={
            "scoring_drift_every": DRIFT_EVERY,
            "scoring_drift_window": 200,
            "scoring_drift_min_window": 100,
            "scoring_drift_interval_s": 3600.0,  # count-triggered reports only
            "scoring_drift_alpha": 0.01,
            "scoring_drift_correction": MultipleTestingCorrection.BONFERRONI,
            "scoring_reference_refresh_s": 0.5,
            "scoring_batch_wait_s": 0.1,
            "pipeline_outbox_retry_s": 0.5,
        }
    )


@pytest.fixture(scope="module")
async def services(module_settings: Settings) -> AsyncIterator[tuple[ScoringService, PipelineService]]:
    scoring, pipeline = ScoringService(module_settings), PipelineService(module_settings)
    await scoring.start()
    await pipeline.start()
    yield scoring, pipeline
    await pipeline.stop()
    await scoring.stop()


async def test_a_drifting_stream_requests_one_training_by_the_drift_rule(
    services: tuple[ScoringService, PipelineService],
    pool: asyncpg.Pool,
    producer: EventProducer,
    store: ObjectStore,
    module_settings: Settings,
) -> None:
    _, pipeline = services
    policy = TriggerPolicy(drift=DriftRule(reports=2, min_features=1))
    setup = await pipeline_deployment(pool, threshold=1000, trigger_policy=policy)
    reference = Deployment(setup.project_id, setup.deployment_id, setup.test_id)
    digits = digit_sets(TRAINING, SHIFTED)
    for start in range(0, TRAINING, 100):
        await asyncio.gather(
            *(
                add_image(pool, store, module_settings, setup.project_id, setup.test_id, png(pixels))
                for pixels, _ in digits["training"][start : start + 100]
            )
        )
    await compute_reference_like_its_job(pool, store, module_settings, reference)

    await producer.publish(Topic.FEEDBACK, submitted(setup))
    assert pipeline.stream is not None
    stream = pipeline.stream

    async def counted() -> CycleCount | None:
        state = stream.cycle_count(setup.deployment_id)
        return state if state.total == 1 else None

    await until(counted, "the one submission counted")

    for pixels, label in digits["shifted"]:
        await producer.publish(Topic.PREDICTIONS, prediction_of(setup.deployment_id, pixels, label))

    async def reports() -> list[DriftReported] | None:
        found = [e for e in await events_of(module_settings, Topic.SCORES, setup.deployment_id, settle_s=0.3)]
        drift = [e for e in found if isinstance(e, DriftReported)]
        return drift if len(drift) == SHIFTED // DRIFT_EVERY else None

    drift = await until(reports, "scoring's three drift reports")
    assert all(r.drift_detected for r in drift), [r.features for r in drift]

    async def all_seen() -> CycleCount | None:
        state = stream.cycle_count(setup.deployment_id)
        return state if state.drift_until == max(r.window_end for r in drift) else None

    state = await until(all_seen, "the pipeline counted every report")
    # The second flagged report fired cycle 1; the third found nothing submitted since.
    assert (state.cycle, state.submitted, len(state.drifted_features)) == (2, 0, 1)

    request = f"{setup.deployment_id}:1"
    experiment = await until(lambda: experiments.requested_experiment(pool, request), "the experiment")
    requested: list[Any] = [
        e
        for e in await events_of(module_settings, Topic.TRAINING, setup.deployment_id)
        if isinstance(e, TrainingRequested)
    ]
    assert [r.request_id for r in requested] == [request]
    fired = requested[0].trigger
    assert fired is not None and fired.rule is TriggerRule.DRIFT
    assert fired.figures["reports"] == 2 and fired.figures["submitted"] == 1
    assert fired.figures["fewest_drifted_features"] >= 1
    assert experiment.training_trigger == fired
    assert await deployment_figures.latest_trigger(pool, setup.project_id, setup.deployment_id) == (
        request,
        fired,
    )
