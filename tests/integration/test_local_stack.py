"""`cvloop up`, `status` and `down` as a user runs them, in a state folder and ports of their own."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from cvloop.demo.digits import digit_png
from cvloop.stack.process import read_pid, wait_until
from cvloop.stack.scratch import PORTS_PER_STACK, free_port_base
from cvloop.stack.settings import StackSettings
from schemas import (
    ClassificationPrediction,
    DeploymentKind,
    ImageRef,
    PredictionLogged,
    PredictionSource,
    RoleResult,
)
from schemas.local_stack import LOCAL_HOST
from schemas.object_keys import ObjectKind
from schemas.predictions import DetectionType
from schemas.topics import ConsumerGroup, Topic
from services.common.db.pool import create_pool
from services.common.db.repositories import deployments, projects
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage.object_store import ObjectStore

COMPONENTS = (
    "postgres",
    "kafka",
    "s3",
    "triton",
    "ingest",
    "api",
    "scoring",
    "pipeline",
    "job_runner",
    "serving",
    "demo",
    "detection_demo",
)


class Cli:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cvloop.cli", *args],
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture
def cli(tmp_path: Path, settings: Settings) -> Iterator[Cli]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "S3_ENDPOINT", "TRITON_URL")
    }
    env |= {
        "CVLOOP_STATE_DIR": str(tmp_path / "state"),
        "CVLOOP_PORT_BASE": str(free_port_base(settings.port_base + PORTS_PER_STACK)),
        "CVLOOP_TOOLS_DIR": str(settings.tools_path),
    }
    runner = Cli(env)
    yield runner
    runner("down")


def _states(output: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in output.splitlines() if line.split()[:1] != ["local"]}


def test_up_status_down(cli: Cli, tmp_path: Path) -> None:
    started = cli("up")
    assert started.returncode == 0, started.stderr
    assert _states(started.stdout) == dict.fromkeys(COMPONENTS, "healthy")

    status = cli("status")
    assert status.returncode == 0
    assert _states(status.stdout) == dict.fromkeys(COMPONENTS, "healthy")
    bootstrap = (tmp_path / "state" / "kafka" / "bootstrap").read_text().strip()
    assert bootstrap.startswith(f"{LOCAL_HOST}:")
    topics = cli("topics", "create")  # the local broker made them at start: reported, not created
    assert topics.returncode == 0, topics.stderr
    assert set(_states(topics.stdout).values()) == {"exists"}
    assert "predictions.raw" in _states(topics.stdout)

    again = cli("up")  # idempotent: running components are left alone
    assert again.returncode == 0
    assert _states(again.stdout) == dict.fromkeys(COMPONENTS, "healthy")

    assert cli("down").returncode == 0
    stopped = cli("status")
    assert stopped.returncode == 1
    assert _states(stopped.stdout) == dict.fromkeys(COMPONENTS, "stopped")


def test_external_component_is_not_started(cli: Cli, tmp_path: Path) -> None:
    result = cli("up", "--only", "s3", S3_ENDPOINT="http://s3.example.internal:9000")
    assert result.returncode == 0, result.stderr
    assert _states(result.stdout) == {"s3": "external"}
    assert not (tmp_path / "state" / "s3" / "pid").exists()


def test_taken_port_names_the_fix(cli: Cli) -> None:
    port = int(cli.env["CVLOOP_PORT_BASE"]) + 1  # the S3 server's port
    with socket.socket() as squatter:
        squatter.bind((LOCAL_HOST, port))
        squatter.listen()
        result = cli("up", "--only", "s3")
    assert result.returncode != 0
    assert f"port {LOCAL_HOST}:{port} is already taken" in result.stderr
    assert "CVLOOP_PORT_BASE" in result.stderr


def test_unknown_component_is_refused(cli: Cli) -> None:
    result = cli("up", "--only", "redis")
    assert result.returncode != 0
    assert "unknown component(s) ['redis']" in result.stderr


# --- restarts: data kept, messages drained --------------------------------------------------------


def _stack_settings(cli: Cli) -> StackSettings:
    """The settings the CLI's stack runs with, for reaching its servers from the test."""
    return StackSettings(
        state_dir=Path(cli.env["CVLOOP_STATE_DIR"]),
        port_base=int(cli.env["CVLOOP_PORT_BASE"]),
        tools_dir_setting=Path(cli.env["CVLOOP_TOOLS_DIR"]),
        database_url_setting=None,
        kafka_bootstrap_setting=None,
        s3_endpoint_setting=None,
        triton_url_setting=None,
    )


def _logged(deployment_id: UUID, n: int) -> list[PredictionLogged]:
    """n served predictions of distinct images (one image is one predicted asset per deployment)."""
    events = []
    for _ in range(n):
        sha = hashlib.sha256(uuid4().bytes).hexdigest()
        events.append(
            PredictionLogged(
                deployment_id=deployment_id,
                prediction_id=uuid4(),
                detection_type=DetectionType.CLASSIFICATION,
                image=ImageRef(
                    object_key=f"images/{sha[:2]}/{sha}.png",
                    sha256=sha,
                    width=32,
                    height=32,
                    content_type="image/png",
                ),
                champion=RoleResult(
                    prediction=ClassificationPrediction(classes=["3"], scores=[0.9]), latency_ms=1
                ),
                source=PredictionSource.SERVING,
                predicted_at=datetime.now(UTC),
            )
        )
    return events


async def _publish(settings: Settings, events: list[PredictionLogged]) -> None:
    async with EventProducer.from_settings(settings) as producer:
        await producer.publish_many(Topic.PREDICTIONS, events)


async def _stored(settings: Settings, prediction_ids: list[UUID]) -> int:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return await connection.fetchval(
            "SELECT count(*) FROM predicted_assets WHERE prediction_id = ANY($1::uuid[])", prediction_ids
        )
    finally:
        await connection.close()


def _drain_state(down_output: str) -> str:
    """The first of `cvloop down`'s two kafka lines: how the drain went (the second: stopped)."""
    line = next(line for line in down_output.splitlines() if line.split()[:1] == ["kafka"])
    return line.removeprefix("kafka").strip().split("  ")[0]


def _up(cli: Cli) -> None:
    started = cli("up")
    assert started.returncode == 0, started.stdout + started.stderr
    assert _states(started.stdout) == dict.fromkeys(COMPONENTS, "healthy")


def test_messages_produced_before_down_are_consumed_before_it_ends(cli: Cli) -> None:
    # Both groups that read `predictions`: one left unread would be reported as lost.
    up = cli("up", *(f"--only={name}" for name in ("postgres", "kafka", "s3", "ingest", "scoring")))
    assert up.returncode == 0, up.stdout + up.stderr
    settings = _stack_settings(cli)
    deployment_id = asyncio.run(_a_deployment(settings))
    events = _logged(deployment_id, 2000)
    asyncio.run(_publish(settings, events))

    down = cli("down")  # right away: ingest's persistence consumer is still reading them

    assert down.returncode == 0, down.stdout + down.stderr
    assert _drain_state(down.stdout) == "drained"
    assert cli("up", "--only", "postgres").returncode == 0
    assert asyncio.run(_stored(settings, [e.prediction_id for e in events])) == len(events)


def test_down_names_what_a_stopped_consumer_left_unread(cli: Cli) -> None:
    up = cli("up", "--only", "postgres", "--only", "kafka")
    assert up.returncode == 0, up.stdout + up.stderr
    settings = _stack_settings(cli)
    asyncio.run(_publish(settings, _logged(uuid4(), 7)))

    down = cli("down", CVLOOP_DRAIN_TIMEOUT_S="1")

    assert down.returncode == 1
    assert _drain_state(down.stdout) == "not drained"
    assert f"{ConsumerGroup.INGEST_PERSISTENCE} has 7 unread on predictions" in down.stdout
    assert _states(cli("status").stdout) == dict.fromkeys(COMPONENTS, "stopped")


async def _a_deployment(settings: Settings) -> UUID:
    """A deployment in a project of its own, for events the persistence consumer accepts."""
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        project = await projects.create_project(pool, f"drain-{uuid4().hex[:8]}")
        created = await deployments.create_deployment(
            pool,
            project.id,
            "drain",
            kind=DeploymentKind.MONITORING_ONLY,
            detection_type=DetectionType.CLASSIFICATION,
        )
        return created.id
    finally:
        await pool.close()


def _predict(settings: StackSettings, digit: int) -> UUID:
    """A prediction of digit image number `digit` (one image is one predicted asset) by the demo
    deployment through serving, with the demo's key; serving loads a deployment once it hears of it, so
    "not served here" is asked again for a while."""
    demo = settings.state_path / "demo"
    answers: list[httpx.Response] = []

    def answered() -> bool:
        answers.append(
            httpx.post(
                f"http://{LOCAL_HOST}:{settings.serving_port}/v1/deployments/"
                f"{(demo / 'deployment').read_text().strip()}/predict",
                headers={"Authorization": f"Bearer {(demo / 'api-key').read_text().strip()}"},
                files={"image": ("digit.png", digit_png(digit), "image/png")},
                timeout=30,
            )
        )
        return answers[-1].status_code != 404

    wait_until(answered, 60.0, interval=1.0)
    assert answers[-1].status_code == 200, answers[-1].text
    return UUID(answers[-1].json()["prediction_id"])


def _kill_9_every_component(state: Path) -> None:
    for name in COMPONENTS:
        recorded = read_pid(state / name)
        if recorded is not None:
            os.kill(recorded[0], signal.SIGKILL)


def test_objects_models_and_messages_survive_down_up_and_kill_9(cli: Cli) -> None:
    _up(cli)
    settings = _stack_settings(cli)
    store = ObjectStore.from_settings(settings)
    # Random contents: content-addressed keys, so they can only be read back if the store kept them.
    kept = {
        store.put_bytes(ObjectKind.IMAGES, uuid4().bytes, "image/png").key,
        store.put_bytes(ObjectKind.MODELS, uuid4().bytes).key,
        store.put_bytes(ObjectKind.REFERENCES, uuid4().bytes).key,
    }
    contents = {key: store.get_bytes(key) for key in kept}
    deployment_id = UUID((settings.state_path / "demo" / "deployment").read_text().strip())
    served = _predict(settings, 1)
    events = _logged(deployment_id, 200)
    asyncio.run(_publish(settings, events))

    down = cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert _drain_state(down.stdout) == "drained"
    _up(cli)
    assert {key: store.get_bytes(key) for key in kept} == contents
    predicted = [served, *(e.prediction_id for e in events)]
    assert asyncio.run(_stored(settings, predicted)) == len(predicted)
    _predict(settings, 2)

    _kill_9_every_component(settings.state_path)
    _up(cli)
    assert {key: store.get_bytes(key) for key in kept} == contents
    assert asyncio.run(_stored(settings, predicted)) == len(predicted)
    again = _predict(settings, 3)  # serving answers, and its prediction goes the whole way again
    assert wait_until(lambda: asyncio.run(_stored(settings, [again])) == 1, 60.0, interval=1.0)
