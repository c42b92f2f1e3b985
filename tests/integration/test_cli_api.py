"""The `cvloop` commands that go through the SDK, against the real control plane (`python -m
services.api`) on the real Postgres, broker and S3. Jobs are moved the way a job runner moves them,
through the jobs repository."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest

from cvloop.sdk import Client, Conflict, Job, NotFound
from cvloop.stack.service import Api
from cvloop.stack.settings import sdk_settings
from schemas.vocabulary import RunStatus
from services.common.db.pool import create_pool
from services.common.db.repositories import jobs
from services.common.domain.onnx_graphs import dense_classifier
from services.common.settings import Settings
from tests.integration.test_api_monitoring import START, store_drift_reports
from tests.sdk_support import invoke, needs, new_project, png, running

pytestmark = needs("services/api/__main__.py")


@pytest.fixture(scope="module")
def api_settings(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings
) -> Iterator[Settings]:
    with running(Api(postgres_settings)):
        yield postgres_settings


@pytest.fixture(scope="module")
def admin_key(api_settings: Settings) -> str:
    return new_project(api_settings, f"cli-{uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def client(api_settings: Settings, admin_key: str) -> Iterator[Client]:
    with Client(admin_key, settings=sdk_settings(api_settings)) as client:
        yield client


def test_project_shows_the_keys_project_and_refuses_a_bad_key(api_settings: Settings, admin_key: str) -> None:
    code, out, _ = invoke(api_settings, "project", api_key=admin_key)
    assert code == 0 and out.startswith("cli-")

    code, _, err = invoke(api_settings, "project", api_key="cvl_not-a-key")
    assert code == 1 and "401" in err

    code, _, err = invoke(api_settings, "project")  # the stack's settings hold no key
    assert code == 1 and "no API key" in err


def test_models_push_uploads_with_a_bar_and_registers_the_version(
    api_settings: Settings, admin_key: str, client: Client, tmp_path: Path
) -> None:
    weights = tmp_path / "model.onnx"
    # An 8x8 grey classifier with a 4096-wide hidden layer: over 1 MiB, several chunks through the bar.
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(64, 4096)), np.zeros(4096)), (rng.normal(size=(4096, 10)), np.zeros(10))]
    weights.write_bytes(dense_classifier(layers, (1, 8, 8)))
    io_file = tmp_path / "io.json"
    io_file.write_text(json.dumps({"width": 8, "height": 8, "color": "gray"}))
    code, out, err = invoke(
        api_settings,
        "models", "push", "pushed", "v1",
        "--create",
        "--detection-type", "classification",
        "--file", f"model.onnx={weights}",
        "--io", str(io_file),
        api_key=admin_key,
    )  # fmt: skip
    assert code == 0, out + err
    assert "uploading model.onnx" in err and "uploading" not in out
    version_id = UUID(out.strip().splitlines()[-1].split()[-1])

    version = client.get_model("pushed").get_version("v1")
    assert version.id == version_id
    assert version["io"]["width"] == 8
    [stored] = version["files"]
    assert stored["name"] == "model.onnx" and stored["size_bytes"] == weights.stat().st_size

    code, _, err = invoke(api_settings, "models", "push", "absent", "v1", "--detection-type", "detection",
                          api_key=admin_key)  # fmt: skip
    assert code == 1 and "404" in err and "'absent'" in err


def test_upload_of_a_non_image_as_an_image_names_the_field(
    api_settings: Settings, admin_key: str, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    code, _, err = invoke(api_settings, "upload", str(text), "--kind", "images", api_key=admin_key)
    assert code == 1 and "415" in err and "body.file" in err

    image = tmp_path / "frame.png"
    image.write_bytes(png(1))
    code, out, _ = invoke(api_settings, "upload", str(image), "--kind", "images", api_key=admin_key)
    assert code == 0 and re.search(r"^images/\S+\.png$", out, re.M)


def test_deployment_commands_set_and_promote_the_shadow(
    api_settings: Settings, admin_key: str, client: Client
) -> None:
    model = client.create_model(f"det-{uuid4().hex[:6]}")
    first = model.create_version("v1", "detection")
    second = model.create_version("v2", "detection")
    name = f"line-{uuid4().hex[:6]}"

    def cvloop(*args: str) -> str:
        code, out, err = invoke(api_settings, *args, api_key=admin_key)
        assert code == 0, out + err
        return out

    cvloop("deployments", "create", name, "--model-version", str(first.id), "--threshold", "0.3")
    assert re.search(rf"^champion\s+{first.id}$", cvloop("deployments", "show", name), re.M)
    assert f"shadow {second.id}" in cvloop("deployments", "set-shadow", name, str(second.id))
    assert f"champion {second.id}" in cvloop("deployments", "promote-shadow", name)
    assert name in cvloop("deployments", "list")
    deployment = client.get_deployment(name)
    assert deployment.champion_model_version_id == second.id and deployment.shadow_model_version_id is None
    assert deployment["confidence_threshold"] == pytest.approx(0.3)


def _launch(client: Client) -> Job:
    model = client.create_model(f"proc-{uuid4().hex[:6]}")
    version = model.create_version("v1", "classification")
    processing = client.create_processing(f"p-{uuid4().hex[:6]}", command=["echo", "hi"])
    return version.launch_processing(processing, {})


def _drive(settings: Settings, job: Job, lines: list[str], outcome: RunStatus, reason: str | None) -> None:
    """What a job runner does with the job's run: start, log, finish."""

    async def drive() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            project_id = await conn.fetchval("SELECT project_id FROM jobs WHERE id = $1", job.id)
            run_id = UUID(str(job.latest_run["id"]))  # type: ignore[index]
            await asyncio.sleep(0.5)  # let the command see the run pending first
            await jobs.start_run(conn, project_id, run_id)
            for number, line in enumerate(lines, start=1):
                await jobs.append_logs(conn, project_id, run_id, [(number, line)])
                await asyncio.sleep(0.1)
            await jobs.finish_run(conn, project_id, run_id, outcome, reason=reason)
        finally:
            await conn.close()

    asyncio.run(drive())


def test_jobs_wait_and_follow_logs_until_the_run_finishes(
    api_settings: Settings, admin_key: str, client: Client
) -> None:
    job = _launch(client)
    assert job.status == "pending"
    lines = [f"step {i}" for i in range(5)]
    runner = threading.Thread(target=_drive, args=(api_settings, job, lines, RunStatus.SUCCEEDED, None))
    runner.start()
    try:
        code, out, err = invoke(api_settings, "jobs", "logs", str(job.id), "-f", "--poll", "0.1",
                                api_key=admin_key)  # fmt: skip
        assert code == 0, out + err
        assert out.splitlines() == lines
        code, out, err = invoke(api_settings, "jobs", "wait", str(job.id), "--poll", "0.1", api_key=admin_key)
        assert code == 0, out + err
        assert f"job {job.id}" in err and out.strip().endswith("succeeded")
    finally:
        runner.join()
    code, out, _ = invoke(api_settings, "jobs", "show", str(job.id), api_key=admin_key)
    assert code == 0 and "run 1  succeeded" in out


def test_jobs_wait_exits_1_on_a_failed_run_and_rerun_starts_another(
    api_settings: Settings, admin_key: str, client: Client
) -> None:
    job = _launch(client)
    runner = threading.Thread(
        target=_drive, args=(api_settings, job, ["loading"], RunStatus.FAILED, "weights missing")
    )
    runner.start()
    try:
        code, out, err = invoke(api_settings, "jobs", "wait", str(job.id), "--poll", "0.1", api_key=admin_key)
    finally:
        runner.join()
    assert code == 1 and out.strip().endswith("failed") and "weights missing" in err

    code, out, err = invoke(api_settings, "jobs", "rerun", str(job.id), api_key=admin_key)
    assert code == 0 and out.startswith("run 2  pending"), out + err
    code, _, err = invoke(api_settings, "jobs", "rerun", str(job.id), api_key=admin_key)
    assert code == 1 and "409" in err  # a run is still pending
    assert str(job.id) in invoke(api_settings, "jobs", "list", "--kind", "processing", api_key=admin_key)[1]


def test_jobs_logs_follow_exits_1_on_a_failed_run(
    api_settings: Settings, admin_key: str, client: Client
) -> None:
    job = _launch(client)
    runner = threading.Thread(
        target=_drive, args=(api_settings, job, ["loading", "boom"], RunStatus.FAILED, "weights missing")
    )
    runner.start()
    try:
        code, out, err = invoke(api_settings, "jobs", "logs", str(job.id), "-f", "--poll", "0.1",
                                api_key=admin_key)  # fmt: skip
    finally:
        runner.join()
    assert code == 1 and out.splitlines() == ["loading", "boom"] and "weights missing" in err


def _store_drift(settings: Settings, project_id: UUID, deployment_id: UUID) -> None:
    async def store() -> None:
        pool = await create_pool(settings.database_url, max_size=1)  # with the jsonb codec
        try:
            await store_drift_reports(pool, project_id, deployment_id)
        finally:
            await pool.close()

    asyncio.run(store())


def test_monitoring_and_the_pipeline_from_the_sdk_and_the_command_line(
    api_settings: Settings, admin_key: str, client: Client
) -> None:
    model = client.create_model(f"mon-{uuid4().hex[:6]}")
    version = model.create_version("v1", "classification")
    name = f"watched-{uuid4().hex[:6]}"
    deployment = client.create_deployment(name, version)
    deployment.setup_continuous_training(training_parameters={"epochs": 4}, threshold=25)
    _store_drift(api_settings, UUID(client.get_project()["id"]), deployment.id)

    start, end = START, START + timedelta(hours=2)
    reports = deployment.drift(start, end)
    assert [r.drift_detected for r in reports] == [False, True]
    [flagged] = deployment.drift(start, end, flagged=True)
    assert flagged.id == reports[1].id and all(f.drifted for f in flagged.features)
    assert deployment.latency(start, end).buckets == []  # nothing predicted in the range
    assert deployment.outliers(start, end, bins=4).histogram[3].upper == 1.0
    assert deployment.quality(start, end).reviewed == 0
    comparison = deployment.comparison(window=50)
    assert comparison.champion is not None and comparison.champion.model_version_id == version.id
    assert comparison.shadow is None

    def cvloop(*args: str) -> tuple[str, str]:
        code, out, err = invoke(api_settings, *args, api_key=admin_key)
        assert code == 0, out + err
        return out, err

    since, until = start.isoformat(), end.isoformat()
    out, err = cvloop(
        "deployments", "drift", name, "--since", since, "--until", until, "--flagged", "--features"
    )
    assert "DRIFT" in out and "bonferroni" in out and "brightness" in out and "1 reports, 1 flagged" in err
    out, _ = cvloop("deployments", "drift", name, "--since", since, "--until", until)
    assert [line.split()[5] for line in out.splitlines()] == ["ok", "DRIFT"]
    out, _ = cvloop("deployments", "comparison", name)
    assert f"champion  {version.id}" in out and "no reviews" in out and re.search(r"^shadow\s+-$", out, re.M)
    out, _ = cvloop("deployments", "show", name)
    assert re.search(r"continuous training\s+active, threshold 25, 0 submitted", out), out
    assert re.search(r"trigger policy\s+\{.*\"min_submitted\": 1", out), out
    assert '"epochs": 4' in out and "training data" in out and "policy manual" in out

    code, _, err = invoke(
        api_settings, "deployments", "drift", name, "--since", "yesterday", api_key=admin_key
    )
    assert code == 2 and "24h, 90m, 7d" in err


def test_model_files_download_and_deletes_refused_while_in_use(
    api_settings: Settings, admin_key: str, client: Client, tmp_path: Path
) -> None:
    weights = bytes(range(256)) * 1024
    model = client.create_model(f"dl-{uuid4().hex[:6]}")
    version = model.create_version(
        "v1", "classification", files={"model.onnx": weights, "labels.txt": b"a\nb\n"}
    )
    written = version.download(tmp_path / "sdk")
    assert sorted(p.name for p in written) == ["labels.txt", "model.onnx"]
    assert (tmp_path / "sdk" / "model.onnx").read_bytes() == weights

    target = str(tmp_path / "cli")
    code, out, err = invoke(
        api_settings, "models", "download", model.name, "v1", "--to", target, api_key=admin_key
    )
    assert code == 0, out + err
    assert (tmp_path / "cli" / "labels.txt").read_bytes() == b"a\nb\n" and len(out.splitlines()) == 2

    deployment = client.create_deployment(f"uses-{uuid4().hex[:6]}", version)
    with pytest.raises(Conflict, match=rf"deployment '{deployment.name}' \(champion\)"):
        version.delete()
    code, _, err = invoke(api_settings, "models", "delete-version", model.name, "v1", api_key=admin_key)
    assert code == 1 and "409" in err and deployment.name in err
    deployment.delete()
    code, out, err = invoke(api_settings, "models", "delete-version", model.name, "v1", api_key=admin_key)
    assert code == 0 and "deleted" in out, out + err
    with pytest.raises(NotFound):
        version.refresh()

    labelmap = client.create_labelmap(f"lm-{uuid4().hex[:6]}", ["a", "b"])
    assert labelmap in client.list_labelmaps()
    assert client.list_labelmaps(name=labelmap.name) == [labelmap]
    code, out, _ = invoke(api_settings, "labelmaps", "list", api_key=admin_key)
    assert code == 0 and re.search(rf"^{labelmap.name}\s+2 labels\s+{labelmap.id}$", out, re.M)
