"""What a job runs (pure): its command or image, its time limit."""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from schemas.events import JobKind
from services.common.domain.jobs import Processing
from services.common.domain.registry import ModelVersion

REFERENCE_TRAINER = ("python", "-m", "cvloop.trainers.classification")
REFERENCE_JOB = ("python", "-m", "services.scoring.reference_job")
# The reference job's own settings, passed on from the runner's environment when set there: no secret.
REFERENCE_JOB_ENV = ("SCORING_REFERENCE_SAMPLE_SIZE", "CVLOOP_MAX_IMAGE_BYTES")
TIMEOUT_PARAMETER = "timeout_s"
RESOURCES_PARAMETER = "resources"
RUNNER_PARAMETERS = frozenset({TIMEOUT_PARAMETER, RESOURCES_PARAMETER})  # read by the runner, not the job


class JobRefused(Exception):
    """The job cannot run as it is; the message is the reason its run fails with."""


class JobCommand(BaseModel):
    """`command` None: the image's own entrypoint (an image-only processing)."""

    model_config = ConfigDict(frozen=True)

    command: tuple[str, ...] | None
    image: str | None = None
    passed_env: tuple[str, ...] = ()  # variables of the runner's own environment the job gets too


def training_command(base: ModelVersion | None) -> JobCommand:
    """The base model version's training entrypoint, or the reference trainer."""
    entrypoint = base.training_entrypoint if base else None
    if entrypoint and entrypoint.strip():
        try:
            command = tuple(shlex.split(entrypoint))
        except ValueError as exc:
            raise JobRefused(f"training_entrypoint {entrypoint!r} is not a command line: {exc}") from None
    else:
        command = REFERENCE_TRAINER
    return JobCommand(command=command, image=base.training_image if base else None)


def processing_command(processing: Processing) -> JobCommand:
    return JobCommand(
        command=tuple(processing.command) if processing.command else None, image=processing.image
    )


def job_command(
    kind: JobKind, *, base: ModelVersion | None = None, processing: Processing | None = None
) -> JobCommand:
    if kind is JobKind.TRAINING:
        return training_command(base)
    if kind is JobKind.PROCESSING:
        if processing is None:
            raise JobRefused("the job's processing does not exist")
        return processing_command(processing)
    return JobCommand(command=REFERENCE_JOB, passed_env=REFERENCE_JOB_ENV)


def passed_env(command: JobCommand, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of the runner's environment `environ` the command gets (those of its own it names)."""
    return {name: environ[name] for name in command.passed_env if name in environ}


def image_name(image: str) -> str:
    """An image reference's name without registry, path, tag or digest: `reg:5000/a/b:1` -> `b`."""
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def local_command(
    job: JobCommand, processing_name: str | None, pythons: Mapping[str, Path] = {}
) -> tuple[str, ...]:
    """The command the local backend runs: a container image cannot run as a subprocess, but a `python`
    command of an image named in `pythons` (JOBS_LOCAL_PYTHONS) runs with that image's stand-in Python."""
    if job.command is None:
        raise JobRefused(
            f"processing {processing_name!r} runs as the image {job.image!r}, which the local backend cannot "
            "run: register it with a command, or run jobs on Kubernetes (JOBS_BACKEND=kubernetes)"
        )
    python = pythons.get(image_name(job.image)) if job.image else None
    if python is not None and job.command[0] == "python":
        return (str(python), *job.command[1:])
    return job.command


def timeout_of(parameters: dict[str, Any], default_s: float) -> float:
    """The job's `timeout_s` parameter, else JOBS_TIMEOUT_S (for a training, the pipeline gives the job the
    experiment's parameters)."""
    value = parameters.get(TIMEOUT_PARAMETER)
    if value is None:
        return default_s
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise JobRefused(
            f"parameters.{TIMEOUT_PARAMETER} must be a positive number of seconds, not {value!r}"
        )
    return float(value)
