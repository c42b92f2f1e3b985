"""schemathesis against the api, ingest and serving as they run (`python -m services.<name>` on the test
servers), each from its own OpenAPI document: valid and invalid requests of every operation, bounded in
time. No answer may be a 5xx, and none may break the schema its document gives for its status.

The demo project's key signs every request; path ids are the demo's served deployment (serving) and a
monitoring-only deployment of its project (ingest), so requests reach the checks behind the routing
rather than stopping at 404. The counts of each run are printed (`-s`), for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from cvloop.demo import seed as demo
from cvloop.stack import stack
from cvloop.stack.settings import StackSettings
from schemas.events import DeploymentKind
from schemas.predictions import DetectionType
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments

FUZZ_S = 40  # each service's time budget: the run stops generating once it is spent
MAX_EXAMPLES = 25  # per operation
CHECKS = "not_a_server_error,response_schema_conformance"


@pytest.fixture(scope="module")
def platform(
    postgres_settings: StackSettings,
    kafka_settings: StackSettings,
    s3_settings: StackSettings,
    triton_settings: StackSettings,
) -> Iterator[StackSettings]:
    if triton_settings.is_external("triton"):
        pytest.skip("serving is fuzzed against the local tritonserver")
    names = ["api", "ingest", "serving"]
    for health in stack.up(triton_settings, names):
        assert health.ok, health
    yield triton_settings
    for _ in stack.down(triton_settings, names):
        pass


@pytest.fixture(scope="module")
async def seeded(platform: StackSettings) -> tuple[demo.Demo, UUID]:
    """The demo (served by serving once its event arrives) and a monitoring-only deployment beside it."""
    seeded = await demo.seed(platform)
    db = await open_pool(platform.database_url, max_size=1)
    try:
        monitored = await deployments.create_deployment(
            db,
            seeded.project_id,
            f"fuzzed-{uuid4().hex[:8]}",
            kind=DeploymentKind.MONITORING_ONLY,
            detection_type=DetectionType.CLASSIFICATION,
            champion_model_version_id=seeded.model_version_id,
        )
    finally:
        await db.close()
    return seeded, monitored.id


def _fuzz(
    url: str, key: str, deployment_id: UUID | None, folder: Path
) -> tuple[subprocess.CompletedProcess[str], dict]:
    config = folder / "schemathesis.toml"
    parameters = f'parameters = {{ "path.deployment_id" = "{deployment_id}" }}\n' if deployment_id else ""
    config.write_text(parameters)
    report = folder / "report.json"
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        CHECKS,
        "--max-time",
        str(FUZZ_S),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "14",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--wait-for-schema",
        "30",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=FUZZ_S * 6, cwd=folder)
    return done, json.loads(report.read_text()) if report.exists() else {}


@pytest.mark.parametrize("service", ["api", "ingest", "serving"])
def test_no_5xx_and_no_answer_breaks_its_schema(
    platform: StackSettings, seeded: tuple[demo.Demo, UUID], service: str, tmp_path: Path
) -> None:
    found, monitored = seeded
    port = {"api": platform.api_port, "ingest": platform.ingest_port, "serving": platform.serving_port}[
        service
    ]
    deployment = {"api": None, "ingest": monitored, "serving": found.deployment_id}[service]
    done, report = _fuzz(f"http://127.0.0.1:{port}", found.api_key, deployment, tmp_path)
    print(f"\n{service}: {json.dumps(report.get('summary', report), default=str)[:2000]}")
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
