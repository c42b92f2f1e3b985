"""The Kubernetes backend offline: the Job rendered from deploy/k8s/jobs/job.yaml for each kind of job,
validated strictly against the Kubernetes API schemas and created by `kubectl create --dry-run=client`;
why a failed Job failed, in words; and the backend's conversation with an API server, played by an httpx
mock transport."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.events import JobKind
from schemas.vocabulary import RunStatus
from services.pipeline.runner.backends import Launch
from services.pipeline.runner.backends.kubernetes import KubernetesBackend, failure_reason
from services.pipeline.runner.backends.kubernetes_job import job_name, load_template, render_job, to_yaml
from services.pipeline.runner.commands import JobCommand, JobRefused, job_command
from tests.samples import job_and_run

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "jobs" / "job.yaml"
IMAGE = "registry.example/cvloop:0.1.0"


def _launch(
    kind: JobKind, command: JobCommand, parameters: dict[str, Any] | None = None, timeout_s: float = 90.5
) -> Launch:
    job, run = job_and_run(kind, parameters=parameters, status=RunStatus.RUNNING)
    return Launch(job=job, run=run, command=command, processing_name="convert", timeout_s=timeout_s)


JOB_ENV = ("CVLOOP_JOB_DIR", "CVLOOP_JOB_KIND", "CVLOOP_JOB_ID", "CVLOOP_RUN_ID")


def _containers(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = manifest["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*spec["initContainers"], *spec["containers"]]}


def _render(launch: Launch) -> dict[str, Any]:
    return render_job(load_template(TEMPLATE), launch, namespace="ml-jobs", image=IMAGE)


def test_a_training_job_is_rendered_with_its_command_deadline_and_contract_env() -> None:
    launch = _launch(JobKind.TRAINING, job_command(JobKind.TRAINING))
    manifest = _render(launch)
    assert manifest["metadata"]["name"] == job_name(launch) == f"cvloop-job-{launch.run.id}"
    assert manifest["metadata"]["namespace"] == "ml-jobs"
    for labels in (manifest["metadata"]["labels"], manifest["spec"]["template"]["metadata"]["labels"]):
        assert labels["cvloop.io/run-id"] == str(launch.run.id)
        assert labels["cvloop.io/job-kind"] == "training"
    assert manifest["spec"]["backoffLimit"] == 0
    assert manifest["spec"]["activeDeadlineSeconds"] == 91
    containers = _containers(manifest)
    for step in ("stage-in", "stage-out"):
        assert containers[step]["image"] == IMAGE
        assert containers[step]["command"][-2:] == ["--run-id", str(launch.run.id)]
    job = containers["job"]
    assert job["image"] == IMAGE
    assert job["command"] == ["python", "-m", "cvloop.trainers.classification"]
    assert {e["name"]: e["value"] for e in job["env"]} == {
        "CVLOOP_JOB_DIR": "/workspace",
        "CVLOOP_JOB_KIND": "training",
        "CVLOOP_JOB_ID": str(launch.job.id),
        "CVLOOP_RUN_ID": str(launch.run.id),
    }
    assert "envFrom" not in job  # a trainer sees no platform settings
    assert job["resources"]["requests"]["cpu"] == "1"  # the template's


def test_a_reference_job_gets_no_platform_settings_and_an_image_processing_its_image() -> None:
    containers = _containers(_render(_launch(JobKind.REFERENCE, job_command(JobKind.REFERENCE))))
    reference = containers["job"]
    assert reference["command"] == ["python", "-m", "services.scoring.reference_job"]
    assert "envFrom" not in reference
    assert {v["name"] for v in reference["env"]} == set(JOB_ENV)
    for step in ("stage-in", "stage-out"):  # the workspace steps read the narrow secret, not the platform's
        assert [next(iter(s.values()))["name"] for s in containers[step]["envFrom"]] == [
            "cvloop-config",
            "cvloop-job-workspace",
        ]
    image_only = JobCommand(command=None, image="me/convert:2")
    job = _containers(_render(_launch(JobKind.PROCESSING, image_only)))["job"]
    assert job["image"] == "me/convert:2" and "command" not in job and "args" not in job


def test_the_resources_parameter_replaces_the_job_containers_resources() -> None:
    resources = {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"nvidia.com/gpu": 1}}
    launch = _launch(JobKind.TRAINING, job_command(JobKind.TRAINING), {"resources": resources})
    assert _containers(_render(launch))["job"]["resources"] == resources
    bad = _launch(JobKind.TRAINING, job_command(JobKind.TRAINING), {"resources": {"gpus": 2}})
    with pytest.raises(JobRefused, match=r"parameters\.resources"):
        _render(bad)


def test_a_template_without_the_workspace_steps_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "job.yaml"
    broken.write_text(TEMPLATE.read_text().replace("name: stage-out", "name: upload"))
    with pytest.raises(ValueError, match="stage-out"):
        load_template(broken)


@pytest.mark.parametrize("kind", list(JobKind))
def test_every_rendered_job_is_valid_for_kubernetes(kind: JobKind) -> None:
    validate = pytest.importorskip("kubernetes_validate")
    command = job_command(kind) if kind is not JobKind.PROCESSING else JobCommand(command=("convert",))
    manifest = _render(_launch(kind, command))
    validate.validate(json.loads(json.dumps(manifest)), "1.31.0", strict=True)


def test_why_a_job_failed_in_words() -> None:
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "..."}
    assert failure_reason({"reason": "DeadlineExceeded"}, None, 30) == "timed out after 30 s"
    stage_in = {"initContainerStatuses": [_ended("stage-in", 1, "staged in\nexperiment 1 does not exist\n")]}
    assert failure_reason(failed, {"status": stage_in}, 30) == "stage-in failed: experiment 1 does not exist"
    job = {"containerStatuses": [_ended("job", 3, "Traceback...\nValueError: lr\n")]}
    assert failure_reason(failed, {"status": job}, 30) == "exit code 3: ValueError: lr"
    oom = {"containerStatuses": [_ended("job", 137, None, reason="OOMKilled")]}
    assert failure_reason(failed, {"status": oom}, 30) == "killed: out of memory (OOMKilled, exit code 137)"
    assert failure_reason(failed, None, 30) == "Kubernetes Job failed: BackoffLimitExceeded: ..."


def _ended(name: str, code: int, message: str | None, reason: str = "Error") -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": code, "reason": reason, "message": message}}}


class FakeApiServer:
    """The few API-server answers the backend needs: the Job it created, its pod, the pod's log."""

    def __init__(self, job_condition: str, exit_code: int, *, exists: bool = False) -> None:
        self.exists = exists  # the Job was created before (by a runner that restarted since)
        self.job_condition = job_condition
        self.exit_code = exit_code
        self.created: dict[str, Any] | None = None
        self.deleted: list[str] = []
        self.polls = 0
        self.watched = asyncio.Event()  # set once the Job was polled a few times

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/apis/batch/v1/namespaces/ml-jobs/jobs":
            self.created = json.loads(request.content)
            if self.exists:
                return httpx.Response(409, json={"reason": "AlreadyExists"})
            return httpx.Response(201, json=self.created)
        name = self.created["metadata"]["name"] if self.created else ""
        if request.method == "DELETE":
            self.deleted.append(path.rsplit("/", 1)[-1])
            return httpx.Response(200, json={})
        if path == f"/apis/batch/v1/namespaces/ml-jobs/jobs/{name}":
            self.polls += 1
            if self.polls >= 3:
                self.watched.set()
            if self.polls < 3 or self.job_condition == "never":
                return httpx.Response(200, json={"status": {"active": 1}})
            return httpx.Response(
                200, json={"status": {"conditions": [{"type": self.job_condition, "status": "True"}]}}
            )
        if path == "/api/v1/namespaces/ml-jobs/pods":
            assert request.url.params["labelSelector"] == f"job-name={name}"
            state = {"terminated": {"exitCode": self.exit_code, "message": "loss went NaN"}}
            return httpx.Response(200, json={"items": [_pod(state)]})
        if path == "/api/v1/namespaces/ml-jobs/pods/pod-1/log":
            assert request.url.params["container"] == "job"
            return httpx.Response(200, text="epoch 1\nepoch 2\n")
        return httpx.Response(404, json={"message": f"no {path}"})


def _pod(state: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "pod-1"}, "status": {"containerStatuses": [{"name": "job", "state": state}]}}


def _backend(server: FakeApiServer) -> KubernetesBackend:
    client = httpx.AsyncClient(transport=httpx.MockTransport(server), base_url="https://k8s")
    return KubernetesBackend(client, load_template(TEMPLATE), namespace="ml-jobs", image=IMAGE, poll_s=0.01)


async def test_the_backend_creates_the_job_streams_its_log_and_reads_its_end() -> None:
    server = FakeApiServer("Complete", 0)
    lines: list[str] = []
    launch = _launch(JobKind.TRAINING, job_command(JobKind.TRAINING))
    ended = await _backend(server).run(launch, lines.append)
    assert ended.succeeded
    assert server.created is not None and server.created["metadata"]["name"] == job_name(launch)
    assert lines == [f"created Kubernetes Job ml-jobs/{job_name(launch)}", "epoch 1", "epoch 2"]


async def test_a_failed_job_fails_with_its_containers_reason() -> None:
    ended = await _backend(FakeApiServer("Failed", 2)).run(
        _launch(JobKind.TRAINING, job_command(JobKind.TRAINING)), lambda _: None
    )
    assert (ended.succeeded, ended.reason) == (False, "exit code 2: loss went NaN")


async def test_a_cancelled_run_deletes_its_job() -> None:
    server = FakeApiServer("never", 0)
    launch = _launch(JobKind.TRAINING, job_command(JobKind.TRAINING))
    running = asyncio.create_task(_backend(server).run(launch, lambda _: None))
    await server.watched.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert server.deleted == [job_name(launch)]


# kubectl maps a manifest's kind to its resource through the API server's discovery documents before it
# prints a dry run, even a client one: these are the only answers it needs for a batch/v1 Job.
DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": []},
    "/apis": {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": "batch",
                "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"},
            }
        ],
    },
    "/apis/batch/v1": {
        "kind": "APIResourceList",
        "groupVersion": "batch/v1",
        "resources": [
            {
                "name": "jobs",
                "singularName": "job",
                "namespaced": True,
                "kind": "Job",
                "verbs": ["create", "get"],
            }
        ],
    },
}


KUBECTL_DRY_RUN = ("kubectl", "create", "--dry-run=client", "--validate=false", "-o", "json")


class _Discovery(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        answer = DISCOVERY.get(self.path.split("?", 1)[0])
        body = json.dumps(answer or {"kind": "Status", "code": 404}).encode()
        self.send_response(200 if answer else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def discovery() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_kubectl_creates_the_rendered_job_in_a_client_dry_run(discovery: str, tmp_path: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    manifest = _render(_launch(JobKind.TRAINING, job_command(JobKind.TRAINING)))
    rendered = tmp_path / "job.yaml"
    rendered.write_text(to_yaml(manifest))
    created = subprocess.run(
        [*KUBECTL_DRY_RUN, "--server", discovery, "-f", str(rendered)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},  # no kubeconfig of the machine's
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == json.loads(json.dumps(manifest))


async def test_a_restarted_runner_follows_the_job_it_created_before() -> None:
    lines: list[str] = []
    launch = _launch(JobKind.TRAINING, job_command(JobKind.TRAINING))
    ended = await _backend(FakeApiServer("Complete", 0, exists=True)).run(launch, lines.append)
    assert ended.succeeded
    assert lines == [
        f"Kubernetes Job ml-jobs/{job_name(launch)} exists already; following it",
        "epoch 1",
        "epoch 2",
    ]
