"""The Kubernetes backend: each run a batch/v1 Job (`kubernetes_job.render_job`), created through the API
server with plain HTTP (in the cluster: the pod's service-account token and CA), its status polled, its
`job` container's log lines streamed to the run's log. The pod stages its workspace in and out itself
(see deploy/k8s/jobs/job.yaml), so the runner needs no volume shared with it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any, Self
from uuid import UUID

import httpx

from ...settings import PipelineSettings
from . import Exit, Launch, Log, process_exit
from .kubernetes_job import JOB_CONTAINER, STEPS, Manifest, job_name, load_template, render_job

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
POLL_S = 2.0
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


class KubernetesBackend:
    resumes_runs = True  # a run's Job goes on without the runner: a restarted runner follows it again

    def clean_orphans(self) -> list[UUID]:
        return []  # nothing runs here: every Job is followed again

    def __init__(
        self,
        client: httpx.AsyncClient,
        template: Manifest,
        *,
        namespace: str,
        image: str,
        poll_s: float = POLL_S,
    ) -> None:
        self.client = client
        self.template = template
        self.namespace = namespace
        self.image = image
        self.poll_s = poll_s

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> Self:
        base_url = settings.jobs_kubernetes_api or (
            f"https://{os.environ.get('KUBERNETES_SERVICE_HOST', 'kubernetes.default.svc')}:"
            f"{os.environ.get('KUBERNETES_SERVICE_PORT', '443')}"
        )
        token = SERVICE_ACCOUNT / "token"
        ca = SERVICE_ACCOUNT / "ca.crt"
        headers = {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}
        client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            verify=str(ca) if ca.exists() else True,
            timeout=httpx.Timeout(30.0, read=None),  # a followed log stays open as long as the job runs
        )
        return cls(
            client,
            load_template(settings.jobs_kubernetes_template),
            namespace=settings.jobs_kubernetes_namespace,
            image=settings.jobs_image,
        )

    @property
    def _jobs(self) -> str:
        return f"/apis/batch/v1/namespaces/{self.namespace}/jobs"

    @property
    def _pods(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods"

    async def run(self, launch: Launch, log: Log) -> Exit:
        manifest = render_job(self.template, launch, namespace=self.namespace, image=self.image)
        name = job_name(launch)
        created = await self.client.post(self._jobs, json=manifest)
        if created.status_code == 409:
            log(f"Kubernetes Job {self.namespace}/{name} exists already; following it")
        elif created.is_error:
            message = created.json().get("message") if created.content else created.reason_phrase
            return Exit(False, f"Kubernetes refused the Job: {message}")
        else:
            log(f"created Kubernetes Job {self.namespace}/{name}")
        streaming = asyncio.create_task(self._stream_logs(name, log))
        try:
            return await self._wait(name, launch.timeout_s)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.client.delete(f"{self._jobs}/{name}", params={"propagationPolicy": "Background"})
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
        while True:
            response = await self.client.get(f"{self._jobs}/{name}")
            response.raise_for_status()
            for condition in response.json().get("status", {}).get("conditions") or []:
                if condition.get("status") != "True":
                    continue
                if condition.get("type") == "Complete":
                    return Exit(True)
                if condition.get("type") == "Failed":
                    return Exit(False, failure_reason(condition, await self._pod(name), timeout_s))
            await asyncio.sleep(self.poll_s)

    async def _pod(self, name: str) -> dict[str, Any] | None:
        response = await self.client.get(self._pods, params={"labelSelector": f"job-name={name}"})
        response.raise_for_status()
        items = response.json().get("items") or []
        return items[-1] if items else None

    async def _stream_logs(self, name: str, log: Log) -> None:
        """Follow the job container's log from when it starts until it ends."""
        while True:
            pod = await self._pod(name)
            status = (pod or {}).get("status", {})
            started = any(
                s.get("name") == JOB_CONTAINER
                and ("running" in s.get("state", {}) or "terminated" in s.get("state", {}))
                for s in status.get("containerStatuses", [])
            )
            if pod is not None and started:
                break
            if status.get("phase") in ("Failed", "Succeeded"):
                return  # ended before the job container ran (its stage-in failed)
            await asyncio.sleep(self.poll_s)
        path = f"{self._pods}/{pod['metadata']['name']}/log"
        async with self.client.stream(
            "GET", path, params={"container": JOB_CONTAINER, "follow": "true"}
        ) as response:
            if response.is_error:
                return
            async for line in response.aiter_lines():
                log(line)
