"""`cvloop up`, `status` and `down` as a user runs them, in a state folder and ports of their own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvloop.stack.scratch import PORTS_PER_STACK, free_port_base
from schemas.local_stack import LOCAL_HOST
from services.common.settings import Settings

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
