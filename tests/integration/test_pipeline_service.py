"""`python -m services.pipeline` as `cvloop up` runs it: healthy, ready, its metrics exposed, and a
training request on the real broker becomes an experiment whose JobRequested its outbox relay publishes."""

from __future__ import annotations

import asyncio
import urllib.request

from cvloop.demo.polling import WAIT_S, until
from schemas.events import JobRequested, TrainingRequested
from schemas.local_stack import LOCAL_HOST
from schemas.topics import Topic
from services.common.db.pool import open_pool
from services.common.db.repositories import experiments
from services.common.domain.experiments import Experiment
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from tests.integration.pipeline_fixtures import events_of, pipeline_deployment


def _get(settings: Settings, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://{LOCAL_HOST}:{settings.pipeline_port}{path}", timeout=5) as answer:
        return answer.status, answer.read().decode()


async def test_the_pipeline_process_answers_and_creates_experiments(pipeline_settings: Settings) -> None:
    async def ready() -> bool | None:
        try:
            status, _ = await asyncio.to_thread(_get, pipeline_settings, "/readyz")
        except OSError:
            return None
        return True if status == 200 else None

    await until(ready, "the pipeline ready")
    assert (await asyncio.to_thread(_get, pipeline_settings, "/healthz"))[0] == 200
    _, exposition = await asyncio.to_thread(_get, pipeline_settings, "/metrics")
    assert "cvloop_pipeline_submissions_total" in exposition

    pool = await open_pool(pipeline_settings.database_url)
    try:
        setup = await pipeline_deployment(pool)
        request = f"{setup.deployment_id}:1"
        async with EventProducer.from_settings(pipeline_settings) as producer:
            await producer.publish(
                Topic.TRAINING,
                TrainingRequested(
                    deployment_id=setup.deployment_id, request_id=request, cycle=1, submitted_count=3
                ),
            )

        async def created() -> Experiment | None:
            return await experiments.requested_experiment(pool, request)

        experiment = await until(created, "the experiment")

        async def job_requested() -> list[JobRequested] | None:
            found = await events_of(pipeline_settings, Topic.JOBS, setup.deployment_id, settle_s=0.3)
            return found or None

        (job,) = await until(job_requested, f"JobRequested within {WAIT_S} s")
        assert job.experiment_id == experiment.id
        assert job.model_version_id == setup.champion_id
    finally:
        await pool.close()
