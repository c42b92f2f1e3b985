"""Session fixtures: each real server is started on first use, on its own ports and state folder,
and stopped when the session ends. A server whose URL setting is given (DATABASE_URL,
KAFKA_BOOTSTRAP_SERVERS, S3_ENDPOINT, TRITON_URL) is used as it is and not started."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cvloop.stack import stack
from cvloop.stack.scratch import scratch_settings
from cvloop.stack.settings import StackSettings
from services.common.settings import Broker
from services.pipeline.runner.service import JobRunnerService

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def settings() -> Iterator[StackSettings]:
    """The test stack's settings. Triton's install is shared across runs (it is large and read-only).

    The state folder is not under pytest's tmp_path: pytest prunes old basetemp folders when another
    session starts, which would pull the data folder from under a server still running."""
    state_dir = Path(tempfile.mkdtemp(prefix="cvloop-test-state-"))
    yield scratch_settings(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)


def _component(settings: StackSettings, name: str) -> Iterator[StackSettings]:
    for _ in stack.up(settings, [name]):
        pass
    try:
        yield settings
    finally:
        for _ in stack.down(settings, [name]):
            pass


@pytest.fixture(scope="session")
def s3_settings(settings: StackSettings) -> Iterator[StackSettings]:
    yield from _component(settings, "s3")


@pytest.fixture(scope="session")
def postgres_settings(settings: StackSettings) -> Iterator[StackSettings]:
    yield from _component(settings, "postgres")


@pytest.fixture(scope="session")
def kafka_settings(settings: StackSettings) -> Iterator[StackSettings]:
    yield from _component(settings, "kafka")


@pytest.fixture(scope="session")
def tansu_settings(postgres_settings: StackSettings, s3_settings: StackSettings) -> Iterator[StackSettings]:
    """A tansu broker beside the session's one when that is librdkafka's mock (CVLOOP_KAFKA_BROKER=mock),
    which takes one member per consumer group, for the tests that need several: started as `cvloop up`
    starts it, on a port block and state folder of its own, with the session's Postgres and S3. Its
    settings name it (KAFKA_BOOTSTRAP_SERVERS), so service processes started from them join it."""
    state_dir = Path(tempfile.mkdtemp(prefix="cvloop-test-tansu-"))
    own = scratch_settings(state_dir).model_copy(
        update={
            "kafka_broker_setting": Broker.TANSU,
            "database_url_setting": postgres_settings.database_url,
            "s3_endpoint_setting": s3_settings.s3_endpoint,
        }
    )
    for broker in _component(own, "kafka"):
        yield broker.model_copy(update={"kafka_bootstrap_setting": broker.kafka_bootstrap_servers})
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def real_kafka_settings(
    kafka_settings: StackSettings,
    postgres_settings: StackSettings,
    s3_settings: StackSettings,
    request: pytest.FixtureRequest,
) -> StackSettings:
    """A broker with real consumer groups, beside the session's Postgres and S3: the session's broker,
    unless it is the mock; then the session's tansu."""
    if kafka_settings.kafka_broker is not Broker.MOCK:
        return kafka_settings
    tansu: StackSettings = request.getfixturevalue("tansu_settings")
    return tansu


@pytest.fixture(scope="session")
def triton_settings(settings: StackSettings) -> Iterator[StackSettings]:
    yield from _component(settings, "triton")


@pytest.fixture(scope="module")
def pipeline_settings(
    postgres_settings: StackSettings, kafka_settings: StackSettings, s3_settings: StackSettings
) -> Iterator[StackSettings]:
    """The pipeline stream as `cvloop up` runs it (`python -m services.pipeline`), on the servers it needs.
    Per module: the local broker takes one member per consumer group, so it leaves before another
    module's pipeline worker joins."""
    yield from _component(postgres_settings, "pipeline")


@pytest.fixture(scope="session")
def job_runner_settings(
    postgres_settings: StackSettings, kafka_settings: StackSettings, s3_settings: StackSettings
) -> StackSettings:
    """The job runner's settings in tests: it looks for pending runs often, and runs a few at once."""
    return postgres_settings.model_copy(
        update={"jobs_poll_s": 0.5, "jobs_max_concurrent": 4, "jobs_timeout_s": 120.0}
    )


@pytest.fixture(scope="module")
async def job_runner(job_runner_settings: StackSettings) -> AsyncIterator[JobRunnerService]:
    """The job runner (local backend) in the test session's event loop, for the module that asks for it
    (tests elsewhere play the runner's part by hand on runs it would claim); `stop()` and `start()` again
    restart it."""
    service = JobRunnerService(job_runner_settings)
    await service.start()
    yield service
    await service.stop()
