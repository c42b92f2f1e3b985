"""The retraining loop end to end, through the real broker, Postgres, S3 and tritonserver, with every
service as `cvloop up` runs it (ingest, api, serving, pipeline, job runner): a served champion (the digits
demo model), N predictions reviewed and submitted with threshold N, exactly one training (the reference
trainer, run by the job runner), the new version with its inherited fields, served as shadow under
deploy_shadow, champion once promoted; replaying the feedback partition and restarting the pipeline
worker creates no second experiment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiokafka import TopicPartition

from cvloop.demo.digits import digit_png
from cvloop.demo.loop import Loop, digit_examples, digit_split, digits_champion, served, set_up
from cvloop.demo.polling import until
from cvloop.stack import stack
from cvloop.stack.service import PythonService
from schemas.codec import decode
from schemas.events import TrainingRequested
from schemas.topics import TOPICS, Topic
from services.common.kafka.consumer import create_consumer
from services.common.kafka.producer import EventProducer, keyed_partitioner
from services.common.settings import Settings

THRESHOLD = 12
TEST_IMAGES = 120
WAIT_S = 300.0


@pytest.fixture(scope="module")
async def loop(running: Settings) -> AsyncIterator[Loop]:
    _, held_out = digit_split()
    test = digit_examples(held_out[THRESHOLD : THRESHOLD + TEST_IMAGES])
    async with set_up(
        running, digits_champion(), threshold=THRESHOLD, parameters={"epochs": 10}, datasets={"test": test}
    ) as built:
        yield built


async def _pipeline_experiments(db: asyncpg.Pool, deployment_id: UUID) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM experiments WHERE training_request_id LIKE $1", f"{deployment_id}:%")


async def _records(settings: Settings, topic: Topic, deployment_id: UUID) -> list[Any]:
    """The deployment's records in its partition of `topic`, from the beginning to the end now."""
    partitions = list(range(TOPICS[topic].partitions))
    partition = TopicPartition(topic, keyed_partitioner(str(deployment_id).encode(), partitions, partitions))
    consumer = create_consumer(settings, f"e2e-{uuid4()}")
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        found = []
        while await consumer.position(partition) < end:
            for records in (await consumer.getmany(partition, timeout_ms=500)).values():
                found += [r for r in records if r.key == str(deployment_id).encode()]
        return found
    finally:
        await consumer.stop()


async def test_submissions_retrain_once_and_the_new_version_goes_shadow_then_champion(
    loop: Loop, running: Settings
) -> None:
    training, held_out = digit_split()
    await served(loop, digit_png(training[0]), WAIT_S)
    await loop.review_and_submit(digit_examples(held_out[:THRESHOLD]), WAIT_S)

    new_id = await loop.shadow_version(WAIT_S)
    await loop.first_shadow_answer(new_id, [digit_png(i) for i in training[1:200]], WAIT_S)

    # Exactly one training: one request, one experiment, one job with one run, which succeeded.
    experiments = await _pipeline_experiments(loop.db, loop.deployment_id)
    assert [e["training_request_id"] for e in experiments] == [loop.request_id]
    experiment = experiments[0]
    assert experiment["status"] == "succeeded"
    assert experiment["base_model_version_id"] == loop.champion_id
    listed = (await loop.api.get(f"/v1/experiments/{experiment['id']}")).json()
    assert listed["training_request_id"] == loop.request_id
    run = await loop.training_run()
    assert run["status"] == "succeeded"
    requests = [
        decode(Topic.TRAINING, r.value) for r in await _records(running, Topic.TRAINING, loop.deployment_id)
    ]
    assert [r.request_id for r in requests if isinstance(r, TrainingRequested)] == [loop.request_id]

    # The new version inherits from the champion and the experiment.
    version = (await loop.api.get(f"/v1/model-versions/{new_id}")).json()
    champion = (await loop.api.get(f"/v1/model-versions/{loop.champion_id}")).json()
    assert version["model_id"] == champion["model_id"]
    assert version["labelmap_id"] == str(loop.labelmap_id)
    assert version["detection_type"] == "classification"
    assert version["io"] == champion["io"]
    assert version["training_entrypoint"] == champion["training_entrypoint"]
    assert version["training_parameters"] == champion["training_parameters"] | loop.parameters
    assert version["source_experiment_id"] == str(experiment["id"])
    assert version["dataset_versions"] == {"feedback": str(loop.feedback_id), "test": str(loop.test_id)}
    assert {"model.onnx", "labels.json"} <= {f["name"] for f in version["files"]}
    metrics = await loop.trainer_metrics(experiment["id"])
    assert 0.0 <= metrics["accuracy_before"] <= 1.0 and 0.0 <= metrics["accuracy_after"] <= 1.0

    # Promotion makes it champion: serving answers with it.
    promoted = await loop.api.post(f"/v1/deployments/{loop.deployment_id}/shadow/promote")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["champion_model_version_id"] == str(new_id)

    async def champion_answers() -> bool | None:
        answer = await loop.predict(digit_png(training[300]))
        return True if answer["model_version_id"] == str(new_id) else None

    await until(champion_answers, "serving to answer with the promoted version", WAIT_S)


async def test_replaying_feedback_and_restarting_the_pipeline_creates_no_second_experiment(
    loop: Loop, running: Settings
) -> None:
    submitted = await _records(running, Topic.FEEDBACK, loop.deployment_id)
    assert len(submitted) == THRESHOLD
    pipeline = next(c for c in stack.components(running, ["pipeline"]) if isinstance(c, PythonService))
    pipeline.stop()
    async with EventProducer.from_settings(running) as producer:
        for record in submitted:
            await producer.publish_bytes(Topic.FEEDBACK, record.value, key=record.key)
    pipeline.start()

    async def replay_handled() -> bool | None:
        exposition = (await loop.api.get(f"http://127.0.0.1:{running.pipeline_port}/metrics")).text
        name = f'cvloop_pipeline_duplicate_submissions_total{{deployment="{loop.deployment_id}"}}'
        lines = [line for line in exposition.splitlines() if line.startswith(name)]
        return True if lines and float(lines[0].split()[-1]) >= THRESHOLD else None

    await until(replay_handled, "the restarted pipeline to skip the replayed submissions", WAIT_S)
    experiments = await _pipeline_experiments(loop.db, loop.deployment_id)
    assert [e["training_request_id"] for e in experiments] == [loop.request_id]
    jobs = await loop.db.fetchval(
        "SELECT count(*) FROM jobs WHERE request_id LIKE $1", f"{loop.deployment_id}:%"
    )
    assert jobs == 1
