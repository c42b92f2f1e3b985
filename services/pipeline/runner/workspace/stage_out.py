"""Staging out: every file the job wrote under outputs/ stored in the object store and recorded on its run,
where the runner finds them when it finishes the run (as experiment artifacts or a new model version)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import asyncpg

from schemas.events import JobKind
from schemas.job_workspace import JobWorkspace
from schemas.names import MAX_FILE_NAME
from schemas.object_keys import ObjectKind
from services.common.db.repositories import jobs
from services.common.domain.jobs import OutputFile
from services.common.storage import ObjectStore

CONTENT_TYPES = {
    ".onnx": "application/onnx",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".gz": "application/gzip",
    ".tar": "application/x-tar",
    ".zip": "application/zip",
}

OBJECT_KINDS = {
    JobKind.TRAINING: ObjectKind.ARTIFACTS,
    JobKind.PROCESSING: ObjectKind.MODELS,
    JobKind.REFERENCE: ObjectKind.REFERENCES,
}

Log = Callable[[str], None]


def output_names(outputs: Path) -> list[str]:
    """The files under outputs/, as paths relative to it, in order; links are not followed out of it."""
    root = outputs.resolve()
    names = []
    for path in sorted(outputs.rglob("*")):
        if path.is_file() and path.resolve().is_relative_to(root):
            names.append(path.relative_to(outputs).as_posix())
    return names


def metrics_summary(text: str) -> str:
    """metrics.json as one log line; ValueError when it is not {name: number}."""
    values = json.loads(text)
    if not isinstance(values, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values.values()
    ):
        raise ValueError("outputs/metrics.json must be an object of finite numbers")
    return "metrics: " + ", ".join(f"{name}={value:g}" for name, value in values.items())


async def stage_out(
    pool: asyncpg.Pool,
    store: ObjectStore,
    project_id: UUID,
    run_id: UUID,
    kind: JobKind,
    workspace: JobWorkspace,
    log: Log,
) -> list[OutputFile]:
    """Upload outputs/ and record it on the run (an empty list when the job wrote nothing)."""
    object_kind = OBJECT_KINDS[kind]
    if workspace.metrics_file.is_file():
        try:
            log(metrics_summary(workspace.metrics_file.read_text()))
        except ValueError as exc:
            log(f"outputs/metrics.json ignored: {exc}")
    files = []
    for name in output_names(workspace.outputs) if workspace.outputs.is_dir() else []:
        if len(name) > MAX_FILE_NAME:
            raise ValueError(f"output {name[:60]}... has a name longer than {MAX_FILE_NAME} characters")
        content_type = CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
        stored = await asyncio.to_thread(store.put_file, object_kind, workspace.outputs / name, content_type)
        files.append(
            OutputFile(name=name, object_key=stored.key, sha256=stored.sha256, size_bytes=stored.size)
        )
    await jobs.record_outputs(pool, project_id, run_id, files)
    log(f"staged out {len(files)} files" + (f": {', '.join(f.name for f in files)}" if files else ""))
    return files
