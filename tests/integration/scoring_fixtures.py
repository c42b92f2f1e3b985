"""What the scoring tests and the drift-trigger test share: the digit images (training, held out, and
shifted: noisy or darkened), and a deployment's training-data reference computed as its reference job
computes it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import asyncpg
import numpy as np

from cvloop.demo.digits import darkened, digit_images, noisy
from cvloop.demo.scoring import Deployment
from schemas.events import JobKind
from schemas.job_workspace import JobWorkspace
from schemas.vocabulary import TargetType
from services.common.db.repositories import deployments, jobs
from services.common.db.repositories.training_references import make_reference_ready
from services.common.settings import Settings
from services.common.storage import ObjectStore
from services.pipeline.runner.finish import staged_reference
from services.pipeline.runner.workspace.stage_in import stage_in
from services.pipeline.runner.workspace.stage_out import stage_out
from services.scoring.reference_job import compute_reference


def digit_sets(training: int, held_out: int) -> dict[str, list[tuple[np.ndarray, int]]]:
    """`training` digits, `held_out` others, and `held_out` more shifted; the same at every call."""
    from sklearn.datasets import load_digits

    images, labels = digit_images(), load_digits().target
    order = np.random.default_rng(7).permutation(len(images))
    pick = lambda part: [(images[i], int(labels[i])) for i in part]  # noqa: E731
    rng = np.random.default_rng(8)
    shifted_source = pick(order[training + held_out : training + 2 * held_out])
    shift = lambda i, p: noisy(p, rng) if i % 2 else darkened(darkened(p, rng), rng)  # noqa: E731
    return {
        "training": pick(order[:training]),
        "held_out": pick(order[training : training + held_out]),
        "shifted": [(shift(i, p), label) for i, (p, label) in enumerate(shifted_source)],
    }


async def compute_reference_like_its_job(
    pool: asyncpg.Pool, store: ObjectStore, settings: Settings, d: Deployment
) -> list[str]:
    """What a run of the deployment's reference job does (the job runner runs it:
    tests/integration/test_job_runner.py): its workspace staged in, the command's reference computed,
    staged out and made the deployment's; the lines it logs."""
    await deployments.set_training_data(pool, d.project_id, d.deployment_id, d.dataset_version_id)
    job, run, _ = await jobs.create_job(
        pool,
        d.project_id,
        JobKind.REFERENCE,
        target_type=TargetType.DEPLOYMENT,
        target_id=d.deployment_id,
        parameters={"dataset_version_id": str(d.dataset_version_id)},
    )
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        workspace = JobWorkspace(Path(folder))
        await stage_in(pool, store, job, run, workspace, lines.append)
        compute_reference(
            workspace,
            sample_size=settings.scoring_reference_sample_size,
            max_bytes=settings.max_image_bytes,
            log=lines.append,
        )
        files = await stage_out(pool, store, job.project_id, run.id, job.kind, workspace, lines.append)
    assert await make_reference_ready(pool, await staged_reference(store, job, run, files))
    return lines
