"""The Kubernetes backend offline: the Job rendered from deploy/k8s/jobs/job.yaml for each kind of job,
validated strictly against the Kubernetes API schemas and created by `kubectl create --dry-run=client`;
why a failed Job failed, in words; and the backend's conversation (through kubernetes-asyncio) with an API
server, played by a local HTTP server: creating, watching, following the log, deleting, a rotated token."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio import client
from kubernetes_asyncio.config import incluster_config

from schemas.events import JobKind
from schemas.vocabulary import RunStatus
from services.pipeline.runner.backends import Launch
from services.pipeline.runner.backends.kubernetes import KubernetesBackend, api_configuration, failure_reason
from services.pipeline.runner.backends.kubernetes_job import job_name, load_template, render_job, to_yaml
from services.pipeline.runner.commands import JobCommand, JobRefused, job_command
from services.pipeline.settings import PipelineSettings as Settings
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
    runner_env = {"SCORING_REFERENCE_SAMPLE_SIZE": "300", "DATABASE_URL": "postgresql://u:p@db/cvloop"}
    launch = _launch(JobKind.REFERENCE, job_command(JobKind.REFERENCE))
    manifest = render_job(
        load_template(TEMPLATE), launch, namespace="ml-jobs", image=IMAGE, environ=runner_env
    )
    env = {v["name"]: v["value"] for v in _containers(manifest)["job"]["env"]}
    assert (
        env.keys() == {*JOB_ENV, "SCORING_REFERENCE_SAMPLE_SIZE"}
        and env["SCORING_REFERENCE_SAMPLE_SIZE"] == "300"
    )
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
    """A real HTTP server playing the API server: it takes the Job, answers watches of it and of its pod
    (the current state, then the change), lists the pod, follows the pod's log, deletes the Job, and
    records each request's bearer token."""

    def __init__(self, job_condition: str, exit_code: int, *, exists: bool = False) -> None:
        self.exists = exists  # the Job was created before (by a runner that restarted since)
        self.job_condition = job_condition
        self.exit_code = exit_code
        self.created: dict[str, Any] | None = None
        self.deleted: list[str] = []
        self.tokens: list[str] = []
        self.watched = asyncio.Event()  # set once the Job's watch has sent its current state

    def app(self) -> web.Application:
        @web.middleware
        async def record_token(request: web.Request, handler: Any) -> web.StreamResponse:
            self.tokens.append(request.headers.get("Authorization", ""))
            return await handler(request)

        app = web.Application(middlewares=[record_token])
        jobs = "/apis/batch/v1/namespaces/ml-jobs/jobs"
        app.router.add_post(jobs, self._create)
        app.router.add_get(jobs, self._watch_job)
        app.router.add_delete(jobs + "/{name}", self._delete)
        app.router.add_get("/api/v1/namespaces/ml-jobs/pods", self._pods)
        app.router.add_get("/api/v1/namespaces/ml-jobs/pods/pod-1/log", self._log)
        return app

    @property
    def name(self) -> str:
        return self.created["metadata"]["name"] if self.created else ""

    async def _create(self, request: web.Request) -> web.Response:
        self.created = await request.json()
        if self.exists:
            return web.json_response({"kind": "Status", "reason": "AlreadyExists"}, status=409)
        return web.json_response(self.created, status=201)

    async def _delete(self, request: web.Request) -> web.Response:
        self.deleted.append(request.match_info["name"])
        return web.json_response({"kind": "Status", "status": "Success"})

    async def _events(
        self, request: web.Request, events: list[dict[str, Any]], hold: bool
    ) -> web.StreamResponse:
        assert request.query["watch"].lower() == "true"  # the client sends True, which the server reads
        response = web.StreamResponse()
        await response.prepare(request)
        for event in events:
            await response.write(json.dumps(event).encode() + b"\n")
        self.watched.set()
        if hold:  # a Job that never ends: the watch stays open until the client goes
            await asyncio.sleep(3600)
        return response

    def _job(self, status: dict[str, Any]) -> dict[str, Any]:
        metadata = {"name": self.name, "namespace": "ml-jobs", "resourceVersion": "1"}
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "status": status}

    async def _watch_job(self, request: web.Request) -> web.StreamResponse:
        assert request.query["fieldSelector"] == f"metadata.name={self.name}"
        events = [{"type": "ADDED", "object": self._job({"active": 1})}]
        if self.job_condition != "never":
            condition = {"type": self.job_condition, "status": "True"}
            events.append({"type": "MODIFIED", "object": self._job({"conditions": [condition]})})
        return await self._events(request, events, hold=self.job_condition == "never")

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        assert request.query["labelSelector"] == f"job-name={self.name}"
        pod = _pod({"terminated": {"exitCode": self.exit_code, "message": "loss went NaN"}})
        if request.query.get("watch", "").lower() == "true":
            return await self._events(request, [{"type": "ADDED", "object": pod}], hold=False)
        return web.json_response({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod]})

    async def _log(self, request: web.Request) -> web.Response:
        assert (request.query["container"], request.query["follow"].lower()) == ("job", "true")
        return web.Response(text="epoch 1\nepoch 2\n")


def _pod(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod-1", "namespace": "ml-jobs"},
        "status": {"containerStatuses": [{"name": "job", "state": state}]},
    }


@contextlib.asynccontextmanager
async def serving(server: FakeApiServer) -> AsyncIterator[str]:
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def backend_on(
    server: FakeApiServer, configuration: client.Configuration | None = None
) -> AsyncIterator[KubernetesBackend]:
    """The backend talking to `server` (with `configuration`'s credentials, when given)."""
    async with serving(server) as url:
        configuration = configuration or client.Configuration()
        configuration.host = url
        backend = KubernetesBackend(
            client.ApiClient(configuration), load_template(TEMPLATE), namespace="ml-jobs", image=IMAGE
        )
        try:
            yield backend
        finally:
            await backend.close()


async def test_the_backend_creates_the_job_streams_its_log_and_reads_its_end() -> None:
    server = FakeApiServer("Complete", 0)
    lines: list[str] = []
    launch = _launch(JobKind.TRAINING, job_command(JobKind.TRAINING))
    async with backend_on(server) as backend:
        ended = await backend.run(launch, lines.append)
    assert ended.succeeded
    assert server.created is not None and server.created["metadata"]["name"] == job_name(launch)
    assert lines == [f"created Kubernetes Job ml-jobs/{job_name(launch)}", "epoch 1", "epoch 2"]


async def test_a_failed_job_fails_with_its_containers_reason() -> None:
    async with backend_on(FakeApiServer("Failed", 2)) as backend:
        ended = await backend.run(_launch(JobKind.TRAINING, job_command(JobKind.TRAINING)), lambda _: None)
    assert (ended.succeeded, ended.reason) == (False, "exit code 2: loss went NaN")


async def test_a_cancelled_run_deletes_its_job() -> None:
    server = FakeApiServer("never", 0)
    launch = _launch(JobKind.TRAINING, job_command(JobKind.TRAINING))
    async with backend_on(server) as backend:
        running = asyncio.create_task(backend.run(launch, lambda _: None))
        await server.watched.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert server.deleted == [job_name(launch)]


async def test_the_service_account_token_is_read_again_when_it_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the cluster the kubelet rewrites the bound token file; the backend's requests follow it."""
    (tmp_path / "token").write_text("first-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "TOKEN_REFRESH_PERIOD", timedelta(0))  # not a minute: now
    in_cluster = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    configuration = api_configuration(Settings(), tmp_path, in_cluster)
    assert (configuration.host, configuration.ssl_ca_cert) == (
        "https://10.0.0.1:443",
        str(tmp_path / "ca.crt"),
    )
    configuration.ssl_ca_cert = None  # the stand-in server speaks plain HTTP
    server = FakeApiServer("Complete", 0)
    launch = _launch(JobKind.TRAINING, job_command(JobKind.TRAINING))
    async with backend_on(server, configuration) as backend:
        await backend.run(launch, lambda _: None)
        (tmp_path / "token").write_text("second-token")  # rotated
        await backend.run(launch, lambda _: None)
    first, second = "Bearer first-token", "Bearer second-token"
    assert server.tokens[0] == first and server.tokens[-1] == second
    assert set(server.tokens) == {first, second}


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
    async with backend_on(FakeApiServer("Complete", 0, exists=True)) as backend:
        ended = await backend.run(launch, lines.append)
    assert ended.succeeded
    assert lines == [
        f"Kubernetes Job ml-jobs/{job_name(launch)} exists already; following it",
        "epoch 1",
        "epoch 2",
    ]
