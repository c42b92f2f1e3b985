"""The `reference` job's command, `python -m services.scoring.reference_job`, which the job runner runs in a
job workspace like any job, without the platform's credentials: the image features of every asset of
the deployment's training dataset version (staged in as the `training` dataset), the outlier model
fitted on them, and the reference written to outputs/reference.bin with outputs/reference.json
(`schemas.job_workspace.ReferenceSummary`). The runner stores it and makes it the deployment's reference
(services/pipeline/runner/finish.py); a reference that cannot be made prints the reason as its last line
and exits 1, and the runner marks the deployment's reference failed with it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from schemas.features import IMAGE_FEATURES, image_features
from schemas.job_workspace import JOB_DIR_ENV, TRAINING_ALIAS, AssetLine, JobWorkspace, ReferenceSummary
from services.common.domain.images import InvalidImage, decode_image

from .outlier import FloatVector
from .reference import build_reference
from .settings import ScoringSettings

DETECTOR = "mahalanobis-ledoit-wolf"

Log = Callable[[str], None]


class ReferenceFailed(Exception):
    """The training data cannot give a reference; the message is the reason people see."""


def asset_features(data: bytes, max_bytes: int) -> FloatVector:
    """IMAGE_FEATURES of one image file, in order."""
    values = image_features(decode_image(data, max_bytes).pixels)
    return np.array([values[name] for name in IMAGE_FEATURES])


def _training_features(workspace: JobWorkspace, max_bytes: int) -> np.ndarray:
    folder = workspace.dataset(TRAINING_ALIAS)
    rows: list[FloatVector] = []
    with workspace.assets_file(TRAINING_ALIAS).open() as lines:
        for line in lines:
            asset = AssetLine.model_validate_json(line)
            try:
                rows.append(asset_features((folder / asset.file).read_bytes(), max_bytes))
            except InvalidImage as exc:
                raise ReferenceFailed(f"asset {asset.file}: {exc}") from None
    if len(rows) < 2:
        raise ReferenceFailed(f"the training dataset version has {len(rows)} assets; at least 2 are needed")
    return np.array(rows)


def compute_reference(
    workspace: JobWorkspace, *, sample_size: int, max_bytes: int, log: Log
) -> ReferenceSummary:
    """Write the reference of the staged training data to outputs/; ReferenceFailed when it cannot
    give one."""
    features = _training_features(workspace, max_bytes)
    log(f"features of {len(features)} training images computed")
    try:
        reference = build_reference(features, sample_size)
    except ValueError as exc:
        raise ReferenceFailed(str(exc)) from None
    summary = ReferenceSummary(
        detector=DETECTOR,
        feature_names=list(reference.feature_names),
        training_size=reference.training_size,
        sample_size=len(reference.sample),
    )
    workspace.outputs.mkdir(parents=True, exist_ok=True)
    workspace.reference_data.write_bytes(reference.to_bytes())
    workspace.reference_summary.write_text(summary.model_dump_json())
    log(f"{DETECTOR} fitted on {summary.training_size} images, {summary.sample_size} kept for drift")
    return summary


def main() -> None:
    """Its settings (the sample size, the largest image) come from the variables the runner passes on."""
    settings = ScoringSettings()
    try:
        compute_reference(
            JobWorkspace(Path(os.environ[JOB_DIR_ENV])),
            sample_size=settings.scoring_reference_sample_size,
            max_bytes=settings.max_image_bytes,
            log=lambda line: print(line, flush=True),
        )
    except (ReferenceFailed, ValueError) as exc:
        print(exc, file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
