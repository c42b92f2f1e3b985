"""Session fixtures: each real server is started on first use, on its own ports and state folder,
and stopped when the session ends. A server whose URL setting is given (DATABASE_URL,
KAFKA_BOOTSTRAP_SERVERS, S3_ENDPOINT, TRITON_URL) is used as it is and not started."""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cvloop.stack import stack
from cvloop.stack.process import port_open
from cvloop.stack.settings import StackSettings
from schemas.local_stack import LOCAL_HOST
from services.pipeline.runner.service import JobRunnerService
from tests.promtool import tools_dir

PORTS_PER_STACK = 11  # see CVLOOP_PORT_BASE: +0 to +10
REPO_ROOT = Path(__file__).resolve().parent.parent


def _bindable(port: int) -> bool:
    """Nothing listens there, and no connection (one in TIME_WAIT included) holds it as its local port:
    servers that bind without SO_REUSEADDR, like tritonserver's HTTP endpoint, fail on those."""
    if port_open(LOCAL_HOST, port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOCAL_HOST, port))
        except OSError:
            return False
    return True


def free_port_base(start: int | None = None) -> int:
    # A random start keeps two test sessions on one machine from picking the same block; below the
    # ephemeral range (32768-60999), so client sockets do not take a port between the check and the start.
    start = start or 20320 + PORTS_PER_STACK * random.randrange(1000)
    for base in range(start, start + 2000, PORTS_PER_STACK):
        if all(_bindable(base + i) for i in range(PORTS_PER_STACK)):
            return base
    raise RuntimeError("no free block of loopback ports for the test stack")


@pytest.fixture(scope="session")
def settings() -> Iterator[StackSettings]:
    """The test stack's settings. Triton's install is shared across runs (it is large and read-only).

    The state folder is not under pytest's tmp_path: pytest prunes old basetemp folders when another
    session starts, which would pull the data folder from under a server still running."""
    state_dir = Path(tempfile.mkdtemp(prefix="cvloop-test-state-"))
    yield StackSettings(state_dir=state_dir, tools_dir_setting=tools_dir(), port_base=free_port_base())
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
