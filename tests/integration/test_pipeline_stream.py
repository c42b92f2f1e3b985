"""The pipeline stream through the real broker, Postgres and S3: submissions counted once per prediction,
exactly one training request, experiment and job per cycle, training off keeps the count, a finished
training (an event published here, as the job runner publishes it) becomes a model version deployed by
each policy, a failed one deploys nothing; replays and a restarted worker change nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from cvloop.demo.digits import DIGITS_IO, SIDE
from cvloop.demo.polling import until
from schemas.deadletter import DeadLetter
from schemas.events import (
    AssetSubmitted,
    DeploymentChange,
    DeploymentUpdated,
    DriftReported,
    FeatureDrift,
    JobKind,
    JobRequested,
    MultipleTestingCorrection,
    OutlierScored,
    TrainingFinished,
    TrainingRequested,
    TrainingStatus,
)
from schemas.object_keys import ObjectKind
from schemas.predictions import DetectionType
from schemas.topics import TOPICS, Topic
from schemas.triggers import DriftRule, OutlierRateRule, QualityRule, TriggerFired, TriggerPolicy
from schemas.vocabulary import DeploymentPolicy, TargetType, TriggerRule
from services.common.db.repositories import deployments, experiments, jobs, registry
from services.common.domain.deployments import Deployment
from services.common.domain.experiments import Experiment
from services.common.domain.onnx_graphs import dense_classifier
from services.common.domain.registry import ModelVersion, NewModelVersion
from services.common.kafka.consumer import create_consumer
from services.common.kafka.producer import EventProducer, keyed_partitioner
from services.common.settings import Settings
from services.common.storage import ObjectStore
from services.pipeline.counting import CycleCount
from services.pipeline.export import finish_training
from services.pipeline.rollout import Outcome, exported_version_names
from services.pipeline.service import PipelineService
from services.pipeline.stream import deployment_key, prediction_key
from tests.integration.pipeline_fixtures import (
    LABELS,
    THRESHOLD,
    Setup,
    events_of,
    pipeline_deployment,
    read_to_end,
    submitted,
    submitted_in_postgres,
)


@pytest.fixture(scope="module")
def module_settings(postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings) -> Settings:
    return postgres_settings.model_copy(update={"pipeline_outbox_retry_s": 0.5})


@pytest.fixture(scope="module")
async def service(module_settings: Settings) -> AsyncIterator[PipelineService]:
    service = PipelineService(module_settings)
    await service.start()
    yield service
    await service.stop()


async def _experiments(pool: asyncpg.Pool, deployment_id: UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT training_request_id FROM experiments WHERE training_request_id LIKE $1 ORDER BY created_at",
        f"{deployment_id}:%",
    )
    return [r["training_request_id"] for r in rows]


async def _experiment(pool: asyncpg.Pool, request: str) -> Experiment | None:
    return await experiments.requested_experiment(pool, request)


async def _counted(service: PipelineService, setup: Setup, total: int) -> CycleCount | None:
    assert service.stream is not None
    state = service.stream.cycle_count(setup.deployment_id)
    return state if state.total >= total else None


async def _training_requests(settings: Settings, deployment_id: UUID) -> list[TrainingRequested]:
    """The deployment's TrainingRequested events (`training` also carries a job runner's TrainingFinished)."""
    found = await events_of(settings, Topic.TRAINING, deployment_id)
    return [event for event in found if isinstance(event, TrainingRequested)]


def _counts(state: CycleCount | None) -> tuple[int, int, int] | None:
    """A cycle's number, its submissions and all submissions (what these tests count)."""
    return (state.cycle, state.submitted, state.total) if state else None


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_threshold_submissions_request_one_training_with_its_experiment_and_job(
    service: PipelineService, pool: asyncpg.Pool, producer: EventProducer, module_settings: Settings
) -> None:
    setup = await pipeline_deployment(pool)
    deployment = str(setup.deployment_id)
    first = submitted(setup)
    # The same prediction twice (a second event for it): counted once, so the third distinct one triggers.
    await producer.publish(Topic.FEEDBACK, first)
    await producer.publish(Topic.FEEDBACK, submitted(setup, first.prediction_id))
    await producer.publish(Topic.FEEDBACK, submitted(setup))
    state = await until(lambda: _counted(service, setup, 2), "two submissions counted")
    assert _counts(state) == (1, 2, 2)
    assert await _experiments(pool, setup.deployment_id) == []
    assert _metric("cvloop_pipeline_duplicate_submissions_total", deployment=deployment) == 1
    assert _metric("cvloop_pipeline_submitted_since_trigger", deployment=deployment) == 2
    assert _metric("cvloop_pipeline_trigger_threshold", deployment=deployment) == THRESHOLD

    await producer.publish(Topic.FEEDBACK, submitted(setup))
    request = f"{setup.deployment_id}:1"
    experiment = await until(lambda: _experiment(pool, request), "the experiment")
    assert experiment.project_id == setup.project_id
    assert experiment.name.startswith("line-4 ") and experiment.name.endswith(" #1")
    assert experiment.base_model_version_id == setup.champion_id
    assert experiment.parameters == {"epochs": 2}
    assert experiment.dataset_versions == {"train": setup.train_id, "test": setup.test_id}

    job_rows = await pool.fetch("SELECT id FROM jobs WHERE request_id = $1", request)
    assert len(job_rows) == 1
    job = await jobs.get_job(pool, setup.project_id, job_rows[0]["id"])
    assert job is not None
    assert (job.kind, job.target_type, job.target_id) == (
        JobKind.TRAINING,
        TargetType.EXPERIMENT,
        experiment.id,
    )
    (run,) = await jobs.list_runs(pool, setup.project_id, job.id)

    async def job_requested() -> list[JobRequested] | None:
        found = await events_of(module_settings, Topic.JOBS, setup.deployment_id, settle_s=0.3)
        return found or None

    (requested,) = await until(job_requested, "JobRequested on jobs")
    assert (requested.job_id, requested.run_id, requested.kind) == (job.id, run.id, JobKind.TRAINING)
    assert requested.experiment_id == experiment.id
    assert requested.model_version_id == setup.champion_id
    assert requested.parameters == {"epochs": 2}

    trainings = await _training_requests(module_settings, setup.deployment_id)
    assert [(t.request_id, t.cycle, t.submitted_count) for t in trainings] == [(request, 1, THRESHOLD)]
    assert service.stream is not None
    assert _counts(service.stream.cycle_count(setup.deployment_id)) == (2, 0, 3)
    assert _metric("cvloop_pipeline_training_requests_total", deployment=deployment) == 1
    assert _metric("cvloop_pipeline_triggers_total", deployment=deployment, rule="submitted") == 1
    fired = TriggerFired(rule=TriggerRule.SUBMITTED, figures={"threshold": THRESHOLD, "submitted": THRESHOLD})
    assert trainings[0].trigger == fired == experiment.training_trigger
    assert _metric("cvloop_pipeline_submissions_total", deployment=deployment) == 3


async def test_training_off_stops_triggers_and_keeps_the_count(
    service: PipelineService, pool: asyncpg.Pool, producer: EventProducer
) -> None:
    setup = await pipeline_deployment(pool, active=False)
    for _ in range(THRESHOLD + 1):
        await producer.publish(Topic.FEEDBACK, submitted(setup))
    state = await until(lambda: _counted(service, setup, THRESHOLD + 1), "submissions counted while off")
    assert _counts(state) == (1, THRESHOLD + 1, THRESHOLD + 1)
    assert await _experiments(pool, setup.deployment_id) == []

    deployment = await deployments.get_deployment(pool, setup.project_id, setup.deployment_id)
    assert deployment is not None
    await deployments.configure_continuous_training(
        pool,
        setup.project_id,
        setup.deployment_id,
        deployment.continuous_training.model_copy(update={"active": True}),
    )
    await producer.publish(Topic.FEEDBACK, submitted(setup))
    await until(lambda: _experiment(pool, f"{setup.deployment_id}:1"), "the experiment once on")
    assert await _experiments(pool, setup.deployment_id) == [f"{setup.deployment_id}:1"]


async def test_bad_messages_are_dead_lettered(
    service: PipelineService, pool: asyncpg.Pool, producer: EventProducer, module_settings: Settings
) -> None:
    setup = await pipeline_deployment(pool)
    key = str(setup.deployment_id).encode()
    await producer.publish_bytes(Topic.FEEDBACK, b'{"type": "asset.submitted"}', key=key)
    await producer.publish(Topic.FEEDBACK, submitted(setup))
    await until(lambda: _counted(service, setup, 1), "the good submission after the bad one")
    # A training request for a deployment that does not exist (deleted since, say).
    gone = uuid4()
    await producer.publish(
        Topic.TRAINING,
        TrainingRequested(deployment_id=gone, request_id=f"{gone}:1", cycle=1, submitted_count=3),
    )

    async def letters(key: bytes) -> list[DeadLetter] | None:
        return await _dead_letters(module_settings, key) or None

    (letter,) = await until(lambda: letters(key), "the feedback dead letter")
    assert letter.source_topic == Topic.FEEDBACK
    assert "prediction_id" in letter.error
    (letter,) = await until(lambda: letters(str(gone).encode()), "the training dead letter")
    assert letter.source_topic == Topic.TRAINING
    assert f"deployment {gone} does not exist" in letter.error
    assert await experiments.requested_experiment(pool, f"{gone}:1") is None


async def _dead_letters(settings: Settings, key: bytes) -> list[DeadLetter]:
    consumer = create_consumer(settings, f"test-{uuid4()}", Topic.DEADLETTER)
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        await read_to_end(consumer, 0.3, lambda r: found.append(DeadLetter.from_bytes(r.value)))
    finally:
        await consumer.stop()
    return [d for d in found if d.consumer == "cvloop-pipeline" and d.source_key == key]


async def _store_artifact(
    pool: asyncpg.Pool, store: ObjectStore, experiment: Experiment, name: str, data: bytes
) -> None:
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.ARTIFACTS, data, "application/octet-stream")
    await experiments.add_artifact(
        pool,
        experiment.project_id,
        experiment.id,
        name=name,
        object_key=stored.key,
        sha256=stored.sha256,
        size_bytes=stored.size,
    )


async def _requested_experiment(setup: Setup, pool: asyncpg.Pool, producer: EventProducer) -> Experiment:
    """The experiment the pipeline creates for a training request published here."""
    request = f"{setup.deployment_id}:1"
    await producer.publish(
        Topic.TRAINING,
        TrainingRequested(deployment_id=setup.deployment_id, request_id=request, cycle=1, submitted_count=3),
    )
    return await until(lambda: _experiment(pool, request), "the experiment")


def _finished(setup: Setup, experiment: Experiment, status: TrainingStatus, reason: str | None = None) -> Any:
    return TrainingFinished(
        deployment_id=setup.deployment_id,
        request_id=f"{setup.deployment_id}:1",
        experiment_id=experiment.id,
        job_run_id=uuid4(),
        status=status,
        reason=reason,
    )


@pytest.mark.parametrize(
    ("policy", "outcome"),
    [
        (DeploymentPolicy.DEPLOY_CHAMPION, "champion"),
        (DeploymentPolicy.DEPLOY_SHADOW, "shadow"),
        (DeploymentPolicy.MANUAL, "manual"),
    ],
)
async def test_a_finished_training_is_exported_and_deployed_by_the_policy(
    policy: DeploymentPolicy,
    outcome: str,
    service: PipelineService,
    pool: asyncpg.Pool,
    producer: EventProducer,
    store: ObjectStore,
    module_settings: Settings,
) -> None:
    setup = await pipeline_deployment(pool, policy=policy)
    experiment = await _requested_experiment(setup, pool, producer)
    await _store_artifact(pool, store, experiment, "model.onnx", f"onnx {uuid4()}".encode())
    await _store_artifact(pool, store, experiment, "labels.json", json.dumps(LABELS).encode())
    await _store_artifact(pool, store, experiment, "metrics.json", b'{"accuracy_after": 0.9}')
    names = exported_version_names(1, experiment.created_at, experiment.id)
    if policy is DeploymentPolicy.MANUAL:  # its usual name taken (by hand, say): the export takes the other
        await registry.create_model_version(
            pool,
            setup.project_id,
            setup.model_id,
            NewModelVersion(version=names[0], detection_type=DetectionType.CLASSIFICATION),
        )
    finished = _finished(setup, experiment, TrainingStatus.SUCCEEDED)
    await producer.publish(Topic.TRAINING, finished)

    async def exported() -> ModelVersion | None:
        return await registry.exported_from(pool, setup.project_id, experiment.id)

    version = await until(exported, "the exported model version")
    assert version.model_id == setup.model_id
    assert version.version == (names[1] if policy is DeploymentPolicy.MANUAL else names[0])
    assert version.labelmap_id == setup.labelmap_id
    assert version.detection_type is DetectionType.CLASSIFICATION
    assert version.training_parameters == {"epochs": 2, "lr": 0.1}
    assert version.training_entrypoint == "python -m my.trainer"
    assert version.source_experiment_id == experiment.id
    assert version.dataset_versions == {"train": setup.train_id, "test": setup.test_id}
    assert {f.name for f in version.files} == {"model.onnx", "labels.json", "metrics.json"}

    async def deployed() -> Deployment | None:
        found = await deployments.get_deployment(pool, setup.project_id, setup.deployment_id)
        assert found is not None
        if policy is DeploymentPolicy.MANUAL:
            return found if _metric("cvloop_pipeline_exports_total", **labels) == 1 else None
        return (
            found if version.id in (found.champion_model_version_id, found.shadow_model_version_id) else None
        )

    labels = {"deployment": str(setup.deployment_id), "outcome": outcome}
    deployment = await until(deployed, "the deployment change")
    expected = {
        DeploymentPolicy.DEPLOY_CHAMPION: (version.id, None),
        DeploymentPolicy.DEPLOY_SHADOW: (setup.champion_id, version.id),
        DeploymentPolicy.MANUAL: (setup.champion_id, None),
    }[policy]
    assert (deployment.champion_model_version_id, deployment.shadow_model_version_id) == expected
    assert _metric("cvloop_pipeline_exports_total", **labels) == 1

    # The finished event again (a replay), then a request for cycle 2 behind it in the same partition:
    # once that one's experiment exists, the replay was handled.
    await producer.publish(Topic.TRAINING, finished)
    later = f"{setup.deployment_id}:2"
    await producer.publish(
        Topic.TRAINING,
        TrainingRequested(deployment_id=setup.deployment_id, request_id=later, cycle=2, submitted_count=3),
    )
    await until(lambda: _experiment(pool, later), "the experiment behind the replay")
    count = await pool.fetchval(
        "SELECT count(*) FROM model_versions WHERE source_experiment_id = $1", experiment.id
    )
    assert count == 1
    updates = [
        u
        for u in await events_of(module_settings, Topic.DEPLOYMENTS, setup.deployment_id)
        if isinstance(u, DeploymentUpdated)
    ]
    changes = [u.change for u in updates]
    if policy is DeploymentPolicy.MANUAL:
        assert changes == []
    else:
        change = DeploymentChange.CHAMPION_SET if outcome == "champion" else DeploymentChange.SHADOW_SET
        assert changes == [change]
        assert (updates[0].champion_model_version_id, updates[0].shadow_model_version_id) == expected


@pytest.mark.parametrize(("classes", "outcome"), [(len(LABELS), "champion"), (len(LABELS) - 1, "unservable")])
async def test_a_served_deployment_takes_only_a_version_serving_can_call(
    classes: int,
    outcome: str,
    service: PipelineService,
    pool: asyncpg.Pool,
    producer: EventProducer,
    store: ObjectStore,
) -> None:
    """The trained graph answers `classes` scores: one fewer than the inherited labelmap's labels, it
    is exported but not deployed, as registering it with that io would be refused."""
    setup = await pipeline_deployment(pool, policy=DeploymentPolicy.DEPLOY_CHAMPION, io=DIGITS_IO)
    experiment = await _requested_experiment(setup, pool, producer)
    rng = np.random.default_rng(classes)
    weights = rng.normal(size=(SIDE * SIDE, classes)).astype(np.float32), np.zeros(classes, np.float32)
    graph = dense_classifier([weights], (1, SIDE, SIDE))
    await _store_artifact(pool, store, experiment, "model.onnx", graph)
    await _store_artifact(pool, store, experiment, "labels.json", json.dumps(LABELS).encode())
    labels = {"deployment": str(setup.deployment_id), "outcome": outcome}
    await producer.publish(Topic.TRAINING, _finished(setup, experiment, TrainingStatus.SUCCEEDED))

    async def counted() -> bool | None:
        return _metric("cvloop_pipeline_exports_total", **labels) == 1 or None

    await until(counted, f"the {outcome} export")
    version = await registry.exported_from(pool, setup.project_id, experiment.id)
    assert version is not None and version.io == DIGITS_IO  # exported either way, the io inherited
    deployment = await deployments.get_deployment(pool, setup.project_id, setup.deployment_id)
    assert deployment is not None
    champion = version.id if outcome == "champion" else setup.champion_id
    assert deployment.champion_model_version_id == champion


@pytest.mark.parametrize("valid", [True, False])
async def test_an_exported_version_serves_with_the_io_its_trainer_wrote(
    valid: bool, service: PipelineService, pool: asyncpg.Pool, producer: EventProducer, store: ObjectStore
) -> None:
    """The experiment's io.json (here: the base's io with another scale) is the exported version's io,
    checked by the servability check too; one that is not a valid io fails the export naming it."""
    setup = await pipeline_deployment(pool, policy=DeploymentPolicy.DEPLOY_CHAMPION, io=DIGITS_IO)
    experiment = await _requested_experiment(setup, pool, producer)
    weights = np.zeros((SIDE * SIDE, len(LABELS)), np.float32), np.zeros(len(LABELS), np.float32)
    await _store_artifact(pool, store, experiment, "model.onnx", dense_classifier([weights], (1, SIDE, SIDE)))
    await _store_artifact(pool, store, experiment, "labels.json", json.dumps(LABELS).encode())
    trained = DIGITS_IO.model_copy(update={"scale": 1.0})
    io_json = trained.model_dump_json().encode() if valid else b'{"width": 8, "height": 8, "color": "cmyk"}'
    await _store_artifact(pool, store, experiment, "io.json", io_json)

    exported = await finish_training(pool, store, _finished(setup, experiment, TrainingStatus.SUCCEEDED))
    assert exported is not None
    version = await registry.exported_from(pool, setup.project_id, experiment.id)
    if valid:
        assert (exported.outcome, exported.reason) == (Outcome.CHAMPION, None)
        assert version is not None and version.io == trained != DIGITS_IO
    else:
        assert exported.outcome is Outcome.FAILED and version is None
        assert exported.reason == (
            f"experiment {experiment.id}: io.json is not a valid io: color: Input should be 'rgb', 'bgr' or "
            "'gray'"
        )


async def test_a_failed_training_deploys_nothing(
    service: PipelineService,
    pool: asyncpg.Pool,
    producer: EventProducer,
    store: ObjectStore,
    module_settings: Settings,
) -> None:
    setup = await pipeline_deployment(pool, policy=DeploymentPolicy.DEPLOY_CHAMPION)
    experiment = await _requested_experiment(setup, pool, producer)
    labels = {"deployment": str(setup.deployment_id), "outcome": "failed"}
    failed_before = _metric("cvloop_pipeline_exports_total", **labels)
    await producer.publish(
        Topic.TRAINING, _finished(setup, experiment, TrainingStatus.FAILED, "exit code 1: out of memory")
    )
    # A training someone started by hand (not a pipeline request) is not the pipeline's: ignored.
    manual = _finished(setup, experiment, TrainingStatus.SUCCEEDED).model_copy(
        update={"request_id": "by-hand"}
    )
    await producer.publish(Topic.TRAINING, manual)
    # Succeeded, but without the labels an export needs: failed as well, nothing exported.
    await _store_artifact(pool, store, experiment, "model.onnx", b"onnx")
    await producer.publish(Topic.TRAINING, _finished(setup, experiment, TrainingStatus.SUCCEEDED))
    # Behind them in the same partition, a request for cycle 2: once its experiment exists, they were
    # handled. (A job runner, when one runs, may report failures of these experiments' jobs too.)
    later = f"{setup.deployment_id}:2"
    await producer.publish(
        Topic.TRAINING,
        TrainingRequested(deployment_id=setup.deployment_id, request_id=later, cycle=2, submitted_count=3),
    )
    await until(lambda: _experiment(pool, later), "the experiment behind the finished trainings")
    assert _metric("cvloop_pipeline_exports_total", **labels) >= failed_before + 2
    assert await _dead_letters(module_settings, str(setup.deployment_id).encode()) == []
    assert await registry.exported_from(pool, setup.project_id, experiment.id) is None
    deployment = await deployments.get_deployment(pool, setup.project_id, setup.deployment_id)
    assert deployment is not None
    assert (deployment.champion_model_version_id, deployment.shadow_model_version_id) == (
        setup.champion_id,
        None,
    )


async def test_a_forgotten_count_is_reconciled_from_postgres_and_triggers_exactly_once(
    service: PipelineService, pool: asyncpg.Pool, producer: EventProducer
) -> None:
    setup = await pipeline_deployment(pool)
    first_cycle: list[AssetSubmitted] = []
    for _ in range(THRESHOLD):
        first_cycle.append(await submitted_in_postgres(pool, setup))
        await producer.publish(Topic.FEEDBACK, first_cycle[-1])
    await until(lambda: _experiment(pool, f"{setup.deployment_id}:1"), "the first experiment")
    await producer.publish(Topic.FEEDBACK, await submitted_in_postgres(pool, setup))
    await until(lambda: _counted(service, setup, THRESHOLD + 1), "a submission of cycle 2 counted")

    # The broker forgets (the local one restarted): the worker's table loses the deployment's count and
    # its predictions (dropped from the table's store, as a worker recovering an empty changelog has
    # them), and submissions whose events were still in the broker are gone with it.
    assert service.stream is not None
    store = service.stream.counts.data
    mine = str(setup.deployment_id).encode()
    forgotten = [k for k, v in list(store.items()) if v == mine or k == deployment_key(setup.deployment_id)]
    assert len(forgotten) == THRESHOLD + 2  # its count and the predictions counted
    for key in forgotten:
        del store[key]
    for _ in range(THRESHOLD - 2):
        await submitted_in_postgres(pool, setup)  # their events lost

    # Postgres holds THRESHOLD - 1 submissions since experiment 1: the next reaches cycle 2's threshold.
    await producer.publish(Topic.FEEDBACK, await submitted_in_postgres(pool, setup))
    request = f"{setup.deployment_id}:2"
    await until(lambda: _experiment(pool, request), "the second experiment, not a reused :1")
    state = await until(lambda: _counted(service, setup, 2 * THRESHOLD), "the reconciled count")
    assert _counts(state) == (3, 0, 2 * THRESHOLD)
    assert await _experiments(pool, setup.deployment_id) == [f"{setup.deployment_id}:1", request]
    reconciliations = _metric(
        "cvloop_pipeline_count_reconciliations_total", deployment=str(setup.deployment_id)
    )
    assert reconciliations == 2  # the deployment's first submission, and after the table forgot

    # A submission of cycle 1 replayed (a worker taking a partition over reads it again from its start)
    # is not counted: the rebuilt table knows every prediction submitted, not only those since the
    # latest experiment. One more after the trigger counts in cycle 3, and makes no third experiment.
    await producer.publish(Topic.FEEDBACK, first_cycle[0])
    await producer.publish(Topic.FEEDBACK, await submitted_in_postgres(pool, setup))
    after = await until(lambda: _counted(service, setup, 2 * THRESHOLD + 1), "cycle 3 counting")
    assert _counts(after) == (3, 1, 2 * THRESHOLD + 1)
    assert await _experiments(pool, setup.deployment_id) == [f"{setup.deployment_id}:1", request]


async def test_a_replay_after_a_kill_between_a_counts_two_writes_is_not_counted_again(
    service: PipelineService, pool: asyncpg.Pool, producer: EventProducer
) -> None:
    # A count sets the deployment's entry, then the prediction's key, each a changelog record of its own
    # (one per batch on tansu): a worker killed between the two leaves its successor the entry without
    # the key, and the successor replays the submission, whose offset was never committed.
    setup = await pipeline_deployment(pool)
    first = await submitted_in_postgres(pool, setup)
    await producer.publish(Topic.FEEDBACK, first)
    await until(lambda: _counted(service, setup, 1), "the first submission counted")
    assert service.stream is not None
    del service.stream.counts.data[prediction_key(first.prediction_id)]

    await producer.publish(Topic.FEEDBACK, first)
    await producer.publish(Topic.FEEDBACK, await submitted_in_postgres(pool, setup))
    # One deployment, one partition: the replay was handled before the next submission was counted.
    state = await until(lambda: _counted(service, setup, 2), "the next submission counted")
    assert _counts(state) == (1, 2, 2)
    duplicates = _metric("cvloop_pipeline_duplicate_submissions_total", deployment=str(setup.deployment_id))
    assert duplicates == 1


def _drift_report(setup: Setup, minute: int, drifted: int) -> DriftReported:
    end = datetime(2026, 12, 1, 12, tzinfo=UTC) + timedelta(minutes=minute)
    return DriftReported(
        deployment_id=setup.deployment_id,
        reference_id=uuid4(),
        window_start=end - timedelta(minutes=1),
        window_end=end,
        window_size=100,
        reference_size=1000,
        correction=MultipleTestingCorrection.BONFERRONI,
        alpha=0.01,
        features=[
            FeatureDrift(feature=name, statistic=0.6, p_value=0.0001, drifted=i < drifted)
            for i, name in enumerate(("brightness", "contrast", "sharpness"))
        ],
        drift_detected=drifted > 0,
        occurred_at=end,
    )


async def test_drift_reports_request_one_training_by_the_drift_rule_and_a_replay_none(
    service: PipelineService, pool: asyncpg.Pool, producer: EventProducer, module_settings: Settings
) -> None:
    """One submission (far below the threshold of 1000), then drift reports on `scores` as scoring
    publishes them: the second flagged one in a row requests the training, the third finds nothing
    submitted since; the reports published again change nothing."""
    policy = TriggerPolicy(drift=DriftRule(reports=2, min_features=2))
    setup = await pipeline_deployment(pool, threshold=1000, trigger_policy=policy)
    await producer.publish(Topic.FEEDBACK, submitted(setup))
    await until(lambda: _counted(service, setup, 1), "the submission counted")
    reports = [_drift_report(setup, 1, 1), _drift_report(setup, 2, 2), _drift_report(setup, 3, 3)]
    reports.append(_drift_report(setup, 4, 2))
    for report in reports:
        await producer.publish(Topic.SCORES, report)
    request = f"{setup.deployment_id}:1"
    experiment = await until(lambda: _experiment(pool, request), "the experiment")
    fired = TriggerFired(
        rule=TriggerRule.DRIFT,
        figures={"reports": 2, "min_features": 2, "fewest_drifted_features": 2, "submitted": 1},
    )
    assert experiment.training_trigger == fired
    assert service.stream is not None

    async def all_seen() -> CycleCount | None:
        assert service.stream is not None
        state = service.stream.cycle_count(setup.deployment_id)
        return state if state.drift_until == reports[-1].window_end else None

    state = await until(all_seen, "the fourth report counted")
    assert (state.cycle, state.submitted, state.drifted_features) == (2, 0, (2,))

    for report in reports:  # replayed
        await producer.publish(Topic.SCORES, report)

    async def replays_seen() -> bool | None:
        seen = _metric(
            "cvloop_pipeline_duplicate_scores_total", deployment=str(setup.deployment_id), type="score.drift"
        )
        return seen >= len(reports) or None

    await until(replays_seen, "the replayed reports seen")
    (requested,) = await _training_requests(module_settings, setup.deployment_id)
    assert (requested.request_id, requested.trigger) == (request, fired)
    assert await _experiments(pool, setup.deployment_id) == [request]
    deployment = str(setup.deployment_id)
    assert _metric("cvloop_pipeline_triggers_total", deployment=deployment, rule="drift") == 1

    deployment = await deployments.get_deployment(pool, setup.project_id, setup.deployment_id)
    assert deployment is not None and deployment.continuous_training.trigger_policy == policy


async def test_an_outlier_rate_over_a_full_window_requests_one_training(
    service: PipelineService, pool: asyncpg.Pool, producer: EventProducer, module_settings: Settings
) -> None:
    policy = TriggerPolicy(outlier_rate=OutlierRateRule(level=0.9, window=4, rate=0.5))
    setup = await pipeline_deployment(pool, threshold=1000, trigger_policy=policy)
    await producer.publish(Topic.FEEDBACK, submitted(setup))
    await until(lambda: _counted(service, setup, 1), "the submission counted")
    reference_id = uuid4()
    scores = [
        OutlierScored(
            deployment_id=setup.deployment_id, prediction_id=uuid4(), reference_id=reference_id, score=s
        )
        for s in (0.95, 0.2, 0.99, 0.97, 0.99)
    ]
    for scored in scores + scores:  # and all of them again, as a replay would
        await producer.publish(Topic.SCORES, scored)

    async def replays_seen() -> bool | None:
        deployment = str(setup.deployment_id)
        seen = _metric("cvloop_pipeline_duplicate_scores_total", deployment=deployment, type="score.outlier")
        return seen >= len(scores) or None

    await until(replays_seen, "the replayed scores seen")
    # The fourth score fills the window with 3 of 4 above 0.9; the fifth finds nothing submitted since.
    (requested,) = await _training_requests(module_settings, setup.deployment_id)
    assert requested.trigger == TriggerFired(
        rule=TriggerRule.OUTLIER_RATE,
        figures={"share_above": 0.75, "rate": 0.5, "level": 0.9, "window": 4, "submitted": 1},
    )
    assert await _experiments(pool, setup.deployment_id) == [f"{setup.deployment_id}:1"]


async def test_reviewed_quality_below_its_level_requests_one_training_then_cools_down(
    service: PipelineService, pool: asyncpg.Pool, producer: EventProducer, module_settings: Settings
) -> None:
    """The champion answers 3; reviews say 3, then 5, then 5: at the third submission its accuracy on
    its last 3 reviews is 1/3, below 0.8; the fourth (accuracy 0) falls in the cooldown."""
    policy = TriggerPolicy(quality=QualityRule(reviews=3, below=0.8), cooldown_s=3600)
    setup = await pipeline_deployment(pool, threshold=1000, trigger_policy=policy)
    for n, label in enumerate(("3", "5", "5", "5"), start=1):
        await producer.publish(Topic.FEEDBACK, await submitted_in_postgres(pool, setup, reviewed_as=label))
        await until(lambda n=n: _counted(service, setup, n), f"submission {n} counted")
    (requested,) = await _training_requests(module_settings, setup.deployment_id)
    assert requested.cycle == 1 and requested.trigger is not None
    assert requested.trigger.rule is TriggerRule.QUALITY
    assert requested.trigger.figures == pytest.approx(
        {"accuracy": 1 / 3, "accuracy_at_deployment": 1 / 3, "reviews": 3, "below": 0.8, "submitted": 3}
    )
    assert service.stream is not None
    assert _counts(service.stream.cycle_count(setup.deployment_id)) == (2, 1, 4)
    deployment = str(setup.deployment_id)
    assert _metric("cvloop_pipeline_triggers_total", deployment=deployment, rule="quality") == 1


async def test_replay_and_restart_create_no_second_experiment(
    service: PipelineService, pool: asyncpg.Pool, producer: EventProducer, module_settings: Settings
) -> None:
    setup = await pipeline_deployment(pool)
    for _ in range(THRESHOLD):
        await producer.publish(Topic.FEEDBACK, submitted(setup))
    await until(lambda: _experiment(pool, f"{setup.deployment_id}:1"), "the experiment")

    # Replay: the deployment's feedback records, as they are in its partition, published again.
    partition = _partition(setup.deployment_id)
    consumer = create_consumer(module_settings, f"test-{uuid4()}", enable_auto_commit=False)
    await consumer.start()
    consumer.assign([TopicPartition(Topic.FEEDBACK, partition)])
    await consumer.seek_to_beginning()
    records: list[Any] = []
    try:
        await read_to_end(consumer, 0.5, records.append)
    finally:
        await consumer.stop()
    mine = [r for r in records if r.key == str(setup.deployment_id).encode()]
    assert len(mine) == THRESHOLD
    (requested,) = await _training_requests(module_settings, setup.deployment_id)
    assert service.stream is not None
    assert _counts(service.stream.cycle_count(setup.deployment_id)) == (2, 0, THRESHOLD)

    # Stop the worker; replay the partition's records and the training request while it is down; start
    # a new worker (it rejoins its group, which the local broker holds ~60 s) and submit one more: it is
    # counted on top of the state recovered from the changelog, the replayed ones are not.
    await service.stop()
    for record in mine:
        await producer.publish_bytes(Topic.FEEDBACK, record.value, key=record.key)
    await producer.publish(Topic.TRAINING, requested)
    restarted = PipelineService(module_settings)
    await restarted.start()
    try:
        await producer.publish(Topic.FEEDBACK, submitted(setup))
        after = await until(lambda: _counted(restarted, setup, THRESHOLD + 1), "the new submission counted")
        assert _counts(after) == (2, 1, THRESHOLD + 1)
        assert await _experiments(pool, setup.deployment_id) == [f"{setup.deployment_id}:1"]
        job_count = await pool.fetchval(
            "SELECT count(*) FROM jobs WHERE request_id LIKE $1", f"{setup.deployment_id}:%"
        )
        assert job_count == 1
        duplicates = _metric(
            "cvloop_pipeline_duplicate_submissions_total", deployment=str(setup.deployment_id)
        )
        assert duplicates >= THRESHOLD  # more when the first worker's last offsets were not committed
    finally:
        await restarted.stop()


def _partition(deployment_id: UUID) -> int:
    partitions = list(range(TOPICS[Topic.FEEDBACK].partitions))
    return keyed_partitioner(str(deployment_id).encode(), partitions, partitions)


async def test_a_restarted_worker_recovers_its_table_as_it_was(
    pool: asyncpg.Pool, producer: EventProducer, module_settings: Settings
) -> None:
    """The table (every deployment's count and counted prediction so far in this module) is rebuilt
    from its changelog alone: these deployments' counts are below the threshold and none lags its
    experiments, so nothing is reconciled from Postgres."""
    worker = PipelineService(module_settings)
    await worker.start()
    try:
        setups = [await pipeline_deployment(pool) for _ in range(3)]
        for n, setup in enumerate(setups, start=1):
            for _ in range(n):
                await producer.publish(Topic.FEEDBACK, submitted(setup))
        for n, setup in enumerate(setups, start=1):
            await until(lambda setup=setup, n=n: _counted(worker, setup, n), "the submissions counted")
        assert worker.stream is not None
        before = dict(worker.stream.counts.items())
    finally:
        await worker.stop()

    restarted = PipelineService(module_settings)
    await restarted.start()
    try:
        assert restarted.stream is not None
        stream = restarted.stream

        async def recovered() -> bool | None:
            return dict(stream.counts.items()) == before or None

        await until(recovered, "the table recovered from its changelog as it was")
    finally:
        await restarted.stop()
    assert {deployment_key(s.deployment_id) for s in setups} <= set(before)


async def test_a_restarted_worker_skips_the_drift_reports_replayed_while_it_was_down(
    pool: asyncpg.Pool, producer: EventProducer, module_settings: Settings
) -> None:
    """The reports' end times come back with the table: replayed ones are not counted again, so the next
    submission finds one report of cycle 2, not four, and requests no second training."""
    worker = PipelineService(module_settings)
    await worker.start()
    setup = await pipeline_deployment(
        pool, threshold=1000, trigger_policy=TriggerPolicy(drift=DriftRule(reports=2))
    )
    reports = [_drift_report(setup, minute, drifted=2) for minute in (1, 2, 3)]
    try:
        await producer.publish(Topic.FEEDBACK, submitted(setup))
        await until(lambda: _counted(worker, setup, 1), "the submission counted")
        for report in reports:
            await producer.publish(Topic.SCORES, report)
        await until(lambda: _experiment(pool, f"{setup.deployment_id}:1"), "the experiment")

        async def all_seen() -> CycleCount | None:
            assert worker.stream is not None
            state = worker.stream.cycle_count(setup.deployment_id)
            return state if state.drift_until == reports[-1].window_end else None

        await until(all_seen, "the third report counted")
    finally:
        await worker.stop()

    for report in reports:
        await producer.publish(Topic.SCORES, report)
    restarted = PipelineService(module_settings)
    await restarted.start()
    try:
        await producer.publish(Topic.FEEDBACK, submitted(setup))
        await until(lambda: _counted(restarted, setup, 2), "the new submission counted")
        deployment = str(setup.deployment_id)

        async def replays_seen() -> bool | None:
            seen = _metric(
                "cvloop_pipeline_duplicate_scores_total", deployment=deployment, type="score.drift"
            )
            return seen >= len(reports) or None

        await until(replays_seen, "the replayed reports recognised")
        assert restarted.stream is not None
        after = restarted.stream.cycle_count(setup.deployment_id)
        assert (after.cycle, after.submitted, after.drifted_features) == (2, 1, (2,))
        assert await _experiments(pool, setup.deployment_id) == [f"{setup.deployment_id}:1"]
    finally:
        await restarted.stop()
