"""A run as a batch/v1 Job (pure): the template (deploy/k8s/jobs/job.yaml) filled in with the run's name,
labels, deadline, images, the workspace steps' run id and the job container's command, env and resources."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from schemas.job_workspace import JobWorkspace

from ..commands import RESOURCES_PARAMETER, JobRefused, passed_env
from . import Launch

JOB_CONTAINER = "job"
STEPS = ("stage-in", "stage-out")  # init containers running the workspace steps of the cvloop image
NAME_PREFIX = "cvloop-job-"

Manifest = dict[str, Any]


def load_template(path: Path) -> Manifest:
    template = yaml.safe_load(path.read_text())
    if not isinstance(template, dict) or template.get("kind") != "Job":
        raise ValueError(f"{path}: a Job template must be one batch/v1 Job")
    spec = template.get("spec", {}).get("template", {}).get("spec", {})
    names = {c.get("name") for c in spec.get("containers", [])} | {
        c.get("name") for c in spec.get("initContainers", [])
    }
    missing = {JOB_CONTAINER, *STEPS} - names
    if missing:
        raise ValueError(f"{path}: the Job template lacks the container(s) {sorted(missing)}")
    return template


def job_name(launch: Launch) -> str:
    return f"{NAME_PREFIX}{launch.run.id}"


def _named(containers: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(c for c in containers if c.get("name") == name)


def _workspace_mount(container: dict[str, Any]) -> str:
    for mount in container.get("volumeMounts", []):
        if mount.get("name") == "workspace":
            return str(mount["mountPath"])
    raise ValueError("the Job template's `job` container does not mount the `workspace` volume")


def render_job(
    template: Manifest, launch: Launch, *, namespace: str, image: str, environ: Mapping[str, str] = {}
) -> Manifest:
    """The Job for one run; `image` is JOBS_IMAGE (the cvloop image); `environ` the runner's environment,
    of which the job container gets only the variables its command names (`commands.passed_env`)."""
    job, run, command = launch.job, launch.run, launch.command
    manifest = copy.deepcopy(template)
    labels = {
        "cvloop.io/job-kind": job.kind.value,
        "cvloop.io/job-id": str(job.id),
        "cvloop.io/run-id": str(run.id),
    }
    metadata = manifest.setdefault("metadata", {})
    metadata.pop("generateName", None)
    metadata["name"] = job_name(launch)
    metadata["namespace"] = namespace
    metadata["labels"] = metadata.get("labels", {}) | labels
    spec = manifest["spec"]
    spec["backoffLimit"] = 0
    spec["activeDeadlineSeconds"] = max(1, math.ceil(launch.timeout_s))
    pod = spec["template"]
    pod.setdefault("metadata", {})["labels"] = pod.get("metadata", {}).get("labels", {}) | labels
    pod_spec = pod["spec"]
    for step in STEPS:
        container = _named(pod_spec["initContainers"], step)
        container["image"] = image
        container["command"] = [*container["command"], "--run-id", str(run.id)]
    container = _named(pod_spec["containers"], JOB_CONTAINER)
    container["image"] = command.image or image
    if command.command is not None:
        container["command"] = list(command.command)
    else:  # an image-only processing: the image's own entrypoint
        container.pop("command", None)
    container.pop("args", None)
    mount = _workspace_mount(container)
    env = JobWorkspace(Path(mount)).job_env(job.id, run.id, job.kind) | passed_env(command, environ)
    container["env"] = [{"name": name, "value": value} for name, value in env.items()]
    container.pop("envFrom", None)  # the job container gets no platform secret, whatever the template says
    resources = job.parameters.get(RESOURCES_PARAMETER)
    if resources is not None:
        if not isinstance(resources, dict) or not set(resources) <= {"requests", "limits"}:
            raise JobRefused(f"parameters.{RESOURCES_PARAMETER} must be {{requests: ..., limits: ...}}")
        container["resources"] = resources
    return manifest


def to_yaml(manifest: Manifest) -> str:
    return yaml.safe_dump(manifest, sort_keys=False)
