"""The Kubernetes backend: each run a batch/v1 Job (`kubernetes_job.render_job`), created through the API
server with kubernetes-asyncio (in the cluster: the pod's service-account token, re-read as the kubelet
rotates it, and CA), the Job watched until it completes or fails, its `job` container's log lines
streamed to the run's log. The pod stages its workspace in and out itself (see deploy/k8s/jobs/job.yaml),
so the runner needs no volume shared with it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self
from uuid import UUID

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader

from ...settings import PipelineSettings
from . import Exit, Launch, Log, process_exit
from .kubernetes_job import JOB_CONTAINER, STEPS, Manifest, job_name, load_template, render_job

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RAW = "object"  # answers as the API server's JSON: the models' checks would refuse a newer server's fields
LOG_DRAIN_S = 10.0  # after the Job ended, how long its log stream may take to reach the end


def _last_line(text: str | None) -> str | None:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else None


def _terminated(statuses: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for status in statuses:
        if status.get("name") == name:
            return status.get("state", {}).get("terminated")
    return None


def failure_reason(condition: dict[str, Any], pod: dict[str, Any] | None, timeout_s: float) -> str:
    """Why a Job failed, from its Failed condition and its pod (pure): a timeout, the stage-in step's
    last line, or the job container's exit as a local run would say it."""
    if condition.get("reason") == "DeadlineExceeded":
        return f"timed out after {timeout_s:g} s"
    status = (pod or {}).get("status", {})
    stage_in = _terminated(status.get("initContainerStatuses", []), STEPS[0])
    if stage_in and stage_in.get("exitCode"):
        detail = _last_line(stage_in.get("message")) or f"exit code {stage_in['exitCode']}"
        return f"stage-in failed: {detail}"
    ended = _terminated(status.get("containerStatuses", []), JOB_CONTAINER)
    if ended is not None:
        if ended.get("reason") == "OOMKilled":
            return f"killed: out of memory (OOMKilled, exit code {ended.get('exitCode')})"
        exit = process_exit(
            int(ended.get("exitCode", 1)) or 1,
            timed_out=False,
            timeout_s=timeout_s,
            last_stderr=_last_line(ended.get("message")),
        )
        assert exit.reason is not None
        return exit.reason
    return f"Kubernetes Job failed: {condition.get('reason')}: {condition.get('message') or ''}".rstrip(": ")


def api_configuration(
    settings: PipelineSettings,
    service_account: Path = SERVICE_ACCOUNT,
    environ: Mapping[str, str] = os.environ,
) -> client.Configuration:
    """JOBS_KUBERNETES_API as it is (`kubectl proxy`, say), else the in-cluster API server with the pod's
    service-account token, read again before a request once a minute has passed: bound tokens rotate."""
    configuration = client.Configuration()
    if settings.jobs_kubernetes_api:
        configuration.host = settings.jobs_kubernetes_api.rstrip("/")
        return configuration
    InClusterConfigLoader(
        token_filename=str(service_account / "token"),
        cert_filename=str(service_account / "ca.crt"),
        environ=dict(environ),  # it reads KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT
    ).load_and_set(configuration)
    return configuration


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


def _container_started(pod: dict[str, Any]) -> bool:
    return any(
        s.get("name") == JOB_CONTAINER
        and ("running" in s.get("state", {}) or "terminated" in s.get("state", {}))
        for s in pod.get("status", {}).get("containerStatuses") or []
    )


class KubernetesBackend:
    resumes_runs = True  # a run's Job goes on without the runner: a restarted runner follows it again

    def __init__(self, api: client.ApiClient, template: Manifest, *, namespace: str, image: str) -> None:
        self.api = api
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.template = template
        self.namespace = namespace
        self.image = image

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> Self:
        return cls(
            client.ApiClient(api_configuration(settings)),
            load_template(settings.jobs_kubernetes_template),
            namespace=settings.jobs_kubernetes_namespace,
            image=settings.jobs_image,
        )

    def clean_orphans(self) -> list[UUID]:
        return []  # nothing runs here: every Job is followed again

    async def close(self) -> None:
        await self.api.close()

    async def run(self, launch: Launch, log: Log) -> Exit:
        manifest = render_job(
            self.template, launch, namespace=self.namespace, image=self.image, environ=os.environ
        )
        name = job_name(launch)
        try:
            await self.batch.create_namespaced_job(self.namespace, manifest)
            log(f"created Kubernetes Job {self.namespace}/{name}")
        except ApiException as exc:
            if exc.status != 409:
                return Exit(False, f"Kubernetes refused the Job: {_api_message(exc)}")
            log(f"Kubernetes Job {self.namespace}/{name} exists already; following it")
        streaming = asyncio.create_task(self._stream_logs(name, log))
        try:
            return await self._wait(name, launch.timeout_s)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
            raise
        finally:
            try:
                async with asyncio.timeout(LOG_DRAIN_S):
                    await streaming
            except (TimeoutError, asyncio.CancelledError):
                streaming.cancel()
            except Exception:  # the log stream is best effort; the status is what decides
                pass

    async def _wait(self, name: str, timeout_s: float) -> Exit:
        """Watch the Job (its current state first, then each change; the watch reconnects by itself)
        until it completes, fails or is deleted."""
        async with watch.Watch(return_type=RAW) as jobs:
            async for event in jobs.stream(
                self.batch.list_namespaced_job, self.namespace, field_selector=f"metadata.name={name}"
            ):
                if event["type"] == "DELETED":
                    return Exit(False, f"the Kubernetes Job {self.namespace}/{name} was deleted")
                for condition in event["raw_object"].get("status", {}).get("conditions") or []:
                    if condition.get("status") != "True":
                        continue
                    if condition.get("type") == "Complete":
                        return Exit(True)
                    if condition.get("type") == "Failed":
                        return Exit(False, failure_reason(condition, await self._pod(name), timeout_s))
        raise RuntimeError(f"the watch of Kubernetes Job {name} ended")  # it reconnects: not reached

    async def _pod(self, name: str) -> dict[str, Any] | None:
        response = await self.core.list_namespaced_pod(
            self.namespace, label_selector=f"job-name={name}", _preload_content=False
        )
        async with response:
            items = (await response.json()).get("items") or []
        return items[-1] if items else None

    async def _stream_logs(self, name: str, log: Log) -> None:
        """Follow the job container's log from when it starts (its pod watched) until it ends."""
        pod: dict[str, Any] | None = None
        async with watch.Watch(return_type=RAW) as pods:
            async for event in pods.stream(
                self.core.list_namespaced_pod, self.namespace, label_selector=f"job-name={name}"
            ):
                candidate = event["raw_object"]
                if _container_started(candidate):
                    pod = candidate
                    break
                if candidate.get("status", {}).get("phase") in ("Failed", "Succeeded"):
                    return  # ended before the job container ran (its stage-in failed)
        if pod is None:
            return
        response = await self.core.read_namespaced_pod_log(
            pod["metadata"]["name"],
            self.namespace,
            container=JOB_CONTAINER,
            follow=True,
            _preload_content=False,
        )
        async with response:
            pending = b""
            async for chunk in response.content.iter_any():  # lines of any length
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    log(line.decode(errors="replace").rstrip("\r"))
            if pending:
                log(pending.decode(errors="replace").rstrip("\r"))
