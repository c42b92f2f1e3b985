"""The local stack a bench runs on: its components on free ports in a temporary state folder, with
tritonserver from the tools folder (CVLOOP_TOOLS_DIR, else the checkout's .cvloop/tools); and the
monitoring-only deployment the benches log predictions to."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from cvloop.stack import stack
from cvloop.stack.scratch import scratch_settings
from cvloop.stack.settings import StackSettings
from schemas.events import DeploymentKind
from schemas.predictions import DetectionType
from schemas.vocabulary import Scope
from services.common.db.repositories import deployments, projects, registry
from services.common.domain.registry import NewModelVersion


@contextmanager
def local_stack(name: str, components: list[str], **overrides: Any) -> Iterator[StackSettings]:
    """The components started (each one's state printed) with the settings `overrides` change; stopped
    and their state folder removed afterwards."""
    state = Path(tempfile.mkdtemp(prefix=f"cvloop-bench-{name}-"))
    settings = scratch_settings(state).model_copy(update=overrides)
    try:
        for health in stack.up(settings, components):
            print(f"{health.name:<12} {health.state}", flush=True)
            if not health.ok:
                raise SystemExit(f"{health.name} is {health.state}: {health.detail}")
        yield settings
    finally:
        for _ in stack.down(settings, components):
            pass
        shutil.rmtree(state, ignore_errors=True)


async def detection_deployment(
    pool: asyncpg.Pool, scopes: list[Scope], *, confidence_threshold: float = 0.0
) -> tuple[UUID, str, UUID]:
    """A new project, an API key with `scopes`, and a monitoring-only detection deployment whose champion
    is a model version without files: (project id, key, deployment id)."""
    project = await projects.create_project(pool, f"bench-{uuid4().hex[:8]}")
    _, key = await projects.create_api_key(pool, project.id, "bench", scopes)
    model = await registry.create_model(pool, project.id, "bench")
    version = await registry.create_model_version(
        pool,
        project.id,
        model.id,
        NewModelVersion(version="1", detection_type=DetectionType.DETECTION),
    )
    deployment = await deployments.create_deployment(
        pool,
        project.id,
        f"bench-{uuid4().hex[:6]}",
        kind=DeploymentKind.MONITORING_ONLY,
        detection_type=DetectionType.DETECTION,
        champion_model_version_id=version.id,
        confidence_threshold=confidence_threshold,
    )
    return project.id, key, deployment.id
