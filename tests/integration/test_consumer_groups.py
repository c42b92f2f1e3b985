"""Consumer groups of several members, on a tansu (the session's, or one started beside the mock, which
takes one member per group): two replicas of a stream service, each the process `cvloop up` starts, split the
partitions of their topics, and Postgres holds every effect exactly once, both alive and with one killed
(SIGKILL) mid-stream, whose partitions the other takes over; a pipeline worker started afterwards recovers
its table as the workers left it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest

from cvloop.demo.digits import digit_images, png
from cvloop.demo.polling import until
from cvloop.demo.scoring import Deployment, classification_deployment, prediction_of, ready_reference
from cvloop.stack.replicas import kill, replicas, scrape
from cvloop.stack.settings import StackSettings
from schemas.events import DeploymentKind, PredictionLogged, PredictionSource, RawPrediction, RoleResult
from schemas.predictions import DetectionType
from schemas.topics import TOPICS, Topic
from services.common.db.repositories import deployments, projects
from services.common.db.repositories.drift_reports import list_drift_reports
from services.common.kafka.producer import EventProducer, keyed_partitioner
from services.common.storage import ObjectStore
from services.ingest.intake import raw_ids
from services.pipeline.counting import CycleCount
from services.pipeline.service import PipelineService
from tests import samples
from tests.exposition import metric_value
from tests.integration.pipeline_fixtures import THRESHOLD, Setup, pipeline_deployment, submitted

pytestmark = pytest.mark.real_kafka

DRIFT_EVERY = 4
# Each faust app's test runs with both workers alive, then with one killed (SIGKILL) mid-stream, whose
# partitions the survivor takes over (what that needed: docs/local-stack.md, consumer groups).
BOTH_ALIVE_OR_ONE_KILLED = pytest.mark.parametrize(
    "kill_one", [pytest.param(False, id="both-alive"), pytest.param(True, id="one-killed")]
)


@pytest.fixture(scope="module")
def module_settings(real_kafka_settings: StackSettings) -> StackSettings:
    return real_kafka_settings.model_copy(
        update={
            "pipeline_outbox_retry_s": 0.5,
            "scoring_drift_every": DRIFT_EVERY,
            "scoring_drift_min_window": DRIFT_EVERY,
            "scoring_drift_window": 100,
            "scoring_drift_interval_s": 3600.0,  # count-triggered reports only
            "scoring_reference_refresh_s": 0.5,
            "scoring_batch_wait_s": 0.1,
        }
    )


def _partition(topic: Topic, deployment_id: UUID) -> int:
    partitions = list(range(TOPICS[topic].partitions))
    return keyed_partitioner(str(deployment_id).encode(), partitions, partitions)


async def _experiments(pool: asyncpg.Pool, deployment_id: UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT training_request_id FROM experiments WHERE training_request_id LIKE $1 ORDER BY 1",
        f"{deployment_id}:%",
    )
    return [r["training_request_id"] for r in rows]


def _counted(count: CycleCount) -> tuple[int, int, int]:
    return count.cycle, count.submitted, count.total


async def _each_has(pool: asyncpg.Pool, setups: list[Setup], cycles: int) -> bool | None:
    found = [len(await _experiments(pool, s.deployment_id)) for s in setups]
    return all(n >= cycles for n in found) or None


@BOTH_ALIVE_OR_ONE_KILLED
async def test_two_pipeline_workers_split_the_deployments_and_lose_and_double_nothing(
    module_settings: StackSettings, pool: asyncpg.Pool, producer: EventProducer, kill_one: bool
) -> None:
    # A deployment on every partition of `feedback`, so each worker owns some.
    setups: list[Setup] = []
    while {_partition(Topic.FEEDBACK, s.deployment_id) for s in setups} != set(range(6)):
        setups.append(await pipeline_deployment(pool))

    async def one_round() -> None:
        await asyncio.gather(*(producer.publish(Topic.FEEDBACK, submitted(s)) for s in setups))

    with replicas(module_settings, "pipeline", 2) as (doomed, survivor):
        for _ in range(THRESHOLD):
            await one_round()
        await until(lambda: _each_has(pool, setups, 1), "every deployment's first experiment")
        expositions = [await scrape(doomed), await scrape(survivor)]
        counted = [
            sum(
                metric_value(e, "cvloop_pipeline_submissions_total", deployment=s.deployment_id)
                for s in setups
            )
            for e in expositions
        ]
        assert all(n > 0 for n in counted) and sum(counted) == THRESHOLD * len(setups), counted

        # The next cycle, and one more submission: the worker dies after its first round.
        await one_round()
        alive = [survivor] if kill_one else [doomed, survivor]
        if kill_one:
            kill(doomed)
        for _ in range(THRESHOLD):
            await one_round()
        await until(lambda: _each_has(pool, setups, 2), "every deployment's second experiment")

        async def since_trigger_everywhere() -> bool | None:
            # Each deployment's gauge is its owner's (another worker never counted for it).
            expositions = [await scrape(r) for r in alive]
            values = [
                max(
                    metric_value(e, "cvloop_pipeline_submitted_since_trigger", deployment=s.deployment_id)
                    for e in expositions
                )
                for s in setups
            ]
            return values == [1.0] * len(setups) or None

        await until(since_trigger_everywhere, "one submission counted since each trigger")

    for setup in setups:  # every threshold crossed once: never zero experiments, never two
        assert await _experiments(pool, setup.deployment_id) == [
            f"{setup.deployment_id}:{cycle}" for cycle in (1, 2)
        ]
        jobs = await pool.fetchval(
            "SELECT count(*) FROM jobs WHERE request_id LIKE $1", f"{setup.deployment_id}:%"
        )
        assert jobs == 2

    # A worker started after both left rebuilds every partition's table from the changelog.
    restarted = PipelineService(module_settings)
    await restarted.start()
    try:
        stream = restarted.stream
        assert stream is not None
        # The counts, and that cycle 2's request time came with them (it differs per deployment).
        expected = _counted(CycleCount(cycle=3, submitted=1, total=2 * THRESHOLD + 1))

        async def recovered() -> bool | None:
            counts = [stream.cycle_count(s.deployment_id) for s in setups]
            return all(_counted(c) == expected and c.last_request_at for c in counts) or None

        await until(recovered, "the restarted worker's table as the survivor left it")
    finally:
        await restarted.stop()


# --- ingest: its raw and persistence consumers ------------------------------------------------------


async def _monitored_deployments(pool: asyncpg.Pool) -> list[UUID]:
    """Monitoring-only deployments of one project, one at least on every partition of the topics ingest
    reads (`predictions.raw` and `predictions` have as many)."""
    project = await projects.create_project(pool, f"groups-{uuid4().hex[:8]}")
    found: list[UUID] = []
    while {_partition(Topic.PREDICTIONS_RAW, d) for d in found} != set(range(6)):
        deployment = await deployments.create_deployment(
            pool,
            project.id,
            f"d-{uuid4().hex[:8]}",
            kind=DeploymentKind.MONITORING_ONLY,
            detection_type=DetectionType.DETECTION,
        )
        found.append(deployment.id)
    return found


def _raw(deployment_id: UUID, rng: np.random.Generator) -> RawPrediction:
    """A producer's prediction of a new image, on `predictions.raw`."""
    image = png(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    return RawPrediction(
        deployment_id=deployment_id,
        image_base64=base64.b64encode(image).decode(),
        width=64,
        height=48,
        champion=RoleResult(prediction=samples.detection(), latency_ms=8.0),
        source="line-4",
    )


def _served(deployment_id: UUID) -> PredictionLogged:
    """A served prediction of a new image, on `predictions`, as serving publishes it."""
    sha = hashlib.sha256(uuid4().bytes).hexdigest()
    return samples.prediction_logged(deployment_id=deployment_id).model_copy(
        update={
            "image": samples.image().model_copy(
                update={"sha256": sha, "object_key": f"images/{sha[:2]}/{sha}.png"}
            ),
            "champion": RoleResult(prediction=samples.detection(), latency_ms=5),
            "shadow": None,
            "source": PredictionSource.SERVING,
        }
    )


async def _stored(pool: asyncpg.Pool, deployment_ids: list[UUID]) -> list[UUID]:
    """The predictions recorded for the deployments, as many times as each was recorded."""
    rows = await pool.fetch(
        "SELECT prediction_id FROM predicted_assets WHERE deployment_id = ANY($1::uuid[])", deployment_ids
    )
    return [r["prediction_id"] for r in rows]


async def test_two_ingest_replicas_split_both_consumers_and_a_killed_one_loses_and_doubles_nothing(
    module_settings: StackSettings, pool: asyncpg.Pool, producer: EventProducer
) -> None:
    targets = await _monitored_deployments(pool)
    rng = np.random.default_rng(16)
    prediction_ids: list[UUID] = []

    async def one_round() -> None:
        raws = [_raw(d, rng) for d in targets]
        served = [_served(d) for d in targets]
        prediction_ids.extend([raw_ids(r.event_id)[0] for r in raws] + [e.prediction_id for e in served])
        await asyncio.gather(
            *(producer.publish(Topic.PREDICTIONS_RAW, r) for r in raws),
            *(producer.publish(Topic.PREDICTIONS, e) for e in served),
        )

    async def all_stored() -> bool | None:
        return set(await _stored(pool, targets)) >= set(prediction_ids) or None

    async def each_replica_handles_both() -> bool | None:
        # A round at a time until both replicas have handled some of each consumer's messages: a replica
        # is healthy before its group has settled, and the first may read all of a round before then.
        await one_round()
        await until(all_stored, "a round stored")
        expositions = [await scrape(doomed), await scrape(survivor)]
        handled = [
            metric_value(e, "cvloop_ingest_consumed_total", consumer=consumer, outcome="done")
            for consumer in ("raw", "persistence")
            for e in expositions
        ]
        return all(n > 0 for n in handled) or None

    with replicas(module_settings, "ingest", 2) as (doomed, survivor):
        await until(each_replica_handles_both, "each replica owning partitions of both consumers")

        await one_round()
        kill(doomed)
        for _ in range(2):
            await one_round()
        await until(all_stored, "every round stored after the kill")

    # Every prediction once, and no other: a replayed raw message after the kill made no second one.
    assert sorted(await _stored(pool, targets)) == sorted(prediction_ids)


# --- scoring -----------------------------------------------------------------------------------------


async def _scored(pool: asyncpg.Pool, deployment_ids: list[UUID]) -> list[UUID]:
    """The predictions scored for the deployments, as many times as each was scored."""
    rows = await pool.fetch(
        "SELECT prediction_id FROM prediction_scores WHERE deployment_id = ANY($1::uuid[])"
        " AND outlier_score IS NOT NULL",
        deployment_ids,
    )
    return [r["prediction_id"] for r in rows]


@BOTH_ALIVE_OR_ONE_KILLED
async def test_two_scoring_workers_split_the_predictions_and_lose_and_double_nothing(
    module_settings: StackSettings,
    pool: asyncpg.Pool,
    producer: EventProducer,
    store: ObjectStore,
    kill_one: bool,
) -> None:
    rng = np.random.default_rng(16)
    scored: list[Deployment] = []
    while {_partition(Topic.PREDICTIONS, d.deployment_id) for d in scored} != set(range(6)):
        d = await classification_deployment(pool)
        await ready_reference(pool, store, d, 500, rng)
        scored.append(d)
    targets = [d.deployment_id for d in scored]
    images = digit_images()
    prediction_ids: list[UUID] = []

    async def one_round() -> None:
        events = [prediction_of(t, images[len(prediction_ids) % len(images)], 3) for t in targets]
        prediction_ids.extend(e.prediction_id for e in events)
        await asyncio.gather(*(producer.publish(Topic.PREDICTIONS, e) for e in events))

    async def all_scored() -> bool | None:
        return set(await _scored(pool, targets)) >= set(prediction_ids) or None

    with replicas(module_settings, "scoring", 2) as (doomed, survivor):
        for _ in range(DRIFT_EVERY - 1):
            await one_round()
        await until(all_scored, "the first rounds scored")
        handled = [
            metric_value(
                await scrape(r), "cvloop_scoring_events_total", topic="predictions", outcome="scored"
            )
            for r in (doomed, survivor)
        ]
        assert all(n > 0 for n in handled), handled  # each worker owns partitions

        # Its offsets uncommitted, its window in the changelog only: the survivor takes both over.
        if kill_one:
            kill(doomed)
        for _ in range(DRIFT_EVERY + 3):
            await one_round()
        await until(all_scored, "every round scored after the kill")

        async def reports_everywhere() -> list[list[int]] | None:
            sizes = [
                sorted(r.window_size for r in await list_drift_reports(pool, d.project_id, d.deployment_id))
                for d in scored
            ]
            return sizes if all(len(s) >= 2 for s in sizes) else None

        sizes = await until(reports_everywhere, "two drift reports per deployment")

    assert sorted(await _scored(pool, targets)) == sorted(prediction_ids)  # each scored once
    # Reports at the 4th and 8th prediction of each window: none lost, none counted twice (a replayed
    # prediction added again would move them).
    assert sizes == [[DRIFT_EVERY, 2 * DRIFT_EVERY]] * len(scored)
