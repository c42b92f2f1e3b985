"""Job workspaces built the way the job runner stages them (`schemas.job_workspace`), for the trainer's
tests and benchmark: a base model version, parameters and dataset aliases of real digit images."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

from cvloop.demo.digits import TrainedModel, darkened, digit_images, png, rotated, split_indices
from schemas.events import JobKind
from schemas.features import RgbImage
from schemas.job_workspace import AssetLine, JobFile, JobWorkspace, ModelVersionFile, image_file
from schemas.predictions import ClassificationPrediction, DetectionType, Prediction


@dataclass(frozen=True)
class Asset:
    pixels: RgbImage
    annotation: Prediction | None


def reviewed(label: str) -> ClassificationPrediction:
    """A classification as a reviewer submits it: the one right class."""
    return ClassificationPrediction(classes=[label], scores=[1.0])


def build_workspace(
    root: Path,
    base: TrainedModel,
    parameters: dict[str, Any],
    datasets: dict[str, Sequence[Asset]],
    detection_type: DetectionType = DetectionType.CLASSIFICATION,
    checkpoint: bytes | None = None,
) -> Path:
    """A training job's workspace in `root`: job.json, parameters.json, base_model/ (with the checkpoint
    `checkpoint` when given), datasets/<alias>/."""
    workspace = JobWorkspace(root)
    root.mkdir(parents=True, exist_ok=True)
    version_id = uuid.uuid4()
    job = JobFile(
        job_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        attempt=1,
        kind=JobKind.TRAINING,
        parameters=parameters,
        model_version_id=version_id,
    )
    workspace.job_file.write_text(job.model_dump_json())
    workspace.parameters_file.write_text(json.dumps(parameters))
    workspace.base_model.mkdir(parents=True)
    workspace.base_model_onnx.write_bytes(base.onnx)
    if checkpoint is not None:
        workspace.base_model_checkpoint.write_bytes(checkpoint)
    version = ModelVersionFile(
        id=version_id,
        version="1",
        detection_type=detection_type,
        labels=base.labels,
        io=base.io,
        training_parameters={},
    )
    workspace.model_version_file.write_text(version.model_dump_json())
    for alias, assets in datasets.items():
        workspace.images(alias).mkdir(parents=True)
        lines = []
        for asset in assets:
            asset_id = uuid.uuid4()
            line = AssetLine(asset_id=asset_id, file=image_file(asset_id, "png"), annotation=asset.annotation)
            (workspace.dataset(alias) / line.file).write_bytes(png(asset.pixels))
            lines.append(line.model_dump_json())
        workspace.assets_file(alias).write_text("\n".join(lines) + "\n")
        workspace.labels_file(alias).write_text(json.dumps(base.labels))
    return root


def shifted_digit(pixels: RgbImage, rng: np.random.Generator) -> RgbImage:
    """What production brings that the base model never saw: digits rotated 10-20 degrees and darkened."""
    return darkened(rotated(pixels, rng), rng)


def shifted_digits_datasets(
    labels: list[str], feedback: int, unlabelled: int = 0, seed: int = 0
) -> dict[str, list[Asset]]:
    """Alias `feedback`: `feedback` shifted digits of the demo models' training part, reviewed, plus
    `unlabelled` ones without annotation; alias `test`: the shifted held-out quarter, reviewed."""
    images, targets = digit_images(), load_digits().target
    train, held_out = split_indices()
    rng = np.random.default_rng(seed)

    def assets(indices: np.ndarray, annotated: bool) -> list[Asset]:
        return [
            Asset(shifted_digit(images[i], rng), reviewed(labels[targets[i]]) if annotated else None)
            for i in indices
        ]

    return {
        "feedback": assets(train[:feedback], True) + assets(train[feedback : feedback + unlabelled], False),
        "test": assets(held_out, True),
    }
