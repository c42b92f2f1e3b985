"""The job runner as `cvloop up` starts it (`python -m services.pipeline.runner`) beside the api, driven the
way a user does: a processing launched through the SDK runs when its JobRequested wakes the runner, and
`cvloop jobs logs -f`, `show`, `rerun` and `wait` follow it; its /metrics count the runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from uuid import uuid4

import httpx
import pytest

from cvloop.sdk import Client
from cvloop.stack.service import Api, JobRunner
from cvloop.stack.settings import sdk_settings
from services.common.settings import Settings
from tests.job_scripts import STEPS_SCRIPT
from tests.sdk_support import eventually, invoke, new_project, running

SUCCEEDED = 'cvloop_job_runs_total{kind="processing",status="succeeded"}'


@pytest.fixture(scope="module")
def stack_settings(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings
) -> Iterator[Settings]:
    # The runner looks for pending runs on its own only every minute: a run starts at once because its
    # JobRequested wakes the runner.
    runner_settings = postgres_settings.model_copy(update={"jobs_poll_s": 60.0})
    with running(Api(postgres_settings), JobRunner(runner_settings)):
        yield postgres_settings


@pytest.fixture(scope="module")
def admin_key(stack_settings: Settings) -> str:
    return new_project(stack_settings, f"cli-jobs-{uuid4().hex[:8]}")


def test_a_processing_runs_in_the_runner_and_cvloop_follows_it(
    stack_settings: Settings, admin_key: str
) -> None:
    script = stack_settings.state_path / "steps.py"  # readable by the jobs' OS user, unlike pytest's tmp
    script.write_text(STEPS_SCRIPT)
    name = f"steps-{uuid4().hex[:6]}"
    with Client(admin_key, settings=sdk_settings(stack_settings)) as client:
        model = client.create_model(f"model-{uuid4().hex[:6]}")
        version = model.create_version("v1", "classification")
        processing = client.create_processing(name, command=["python", str(script)])
        job = version.launch_processing(processing, {})

        def cvloop(*args: str) -> tuple[int, str]:
            code, out, err = invoke(stack_settings, *args, api_key=admin_key)
            assert code == 0, out + err
            return code, out

        code, out = cvloop("jobs", "logs", str(job.id), "-f", "--poll", "0.2")
        assert code == 0, out
        lines = out.splitlines()
        assert [line for line in lines if line.startswith("step")] == [f"step {i}" for i in range(1, 6)]
        assert lines[-1] == "succeeded"
        code, out = cvloop("jobs", "show", str(job.id))
        assert code == 0 and re.search(
            r"run 1  succeeded\s+[0-9.]+ s  launched by \S+ \([0-9a-f-]{36}\) at ", out
        )
        code, out = cvloop("jobs", "list", "--kind", "processing")
        (listed,) = [line for line in out.splitlines() if line.startswith(str(job.id))]
        assert re.search(r"launched by \S+ \([0-9a-f-]{36}\) at \d{4}-", listed), listed
        assert model.get_version(f"v1-{name}")["files"][0]["name"] == "model.onnx"

        code, out = cvloop("jobs", "rerun", str(job.id))
        assert code == 0 and out.startswith("run 2  pending"), out
        code, out = cvloop("jobs", "wait", str(job.id), "--poll", "0.2")
        assert out.strip() == f"{job.id}  processing succeeded"
        assert model.get_version(f"v1-{name}-2")["files"][0]["name"] == "model.onnx"

    runner = f"http://127.0.0.1:{stack_settings.job_runner_port}"
    assert httpx.get(f"{runner}/readyz").status_code == 200

    def counted() -> dict[str, float] | None:
        """The runner's job metrics once it is idle and both runs are counted (just after their finish
        commits, which the CLI may see first). It may have run more: runs other tests left pending."""
        text = httpx.get(f"{runner}/metrics").text
        values = {
            name: float(value)
            for name, value in re.findall(r'^(cvloop_job_\S+\{kind="processing"[^}]*\}) (\S+)$', text, re.M)
        }
        idle = values.get('cvloop_job_runs_active{kind="processing"}') == 0.0
        return values if idle and values.get(SUCCEEDED, 0) >= 2 else None

    metrics = eventually(counted, timeout_s=30)
    finished = sum(v for name, v in metrics.items() if name.startswith("cvloop_job_runs_total"))
    assert metrics['cvloop_job_run_duration_seconds_count{kind="processing"}'] == finished
