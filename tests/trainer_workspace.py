"""Job workspaces built the way the job runner stages them (README, "Job workspace"), for the trainer's
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

from cvloop.demo.digits import TrainedModel, split_indices
from schemas.features import RgbImage
from schemas.predictions import ClassificationPrediction, DetectionType, Prediction
from tests.digits import darkened, digit_images, png, rotated


@dataclass(frozen=True)
class Asset:
    pixels: RgbImage
    annotation: Prediction | None


def reviewed(label: str) -> ClassificationPrediction:
    """A classification as a reviewer submits it: the one right class."""
    return ClassificationPrediction(classes=[label], scores=[1.0])


def build_workspace(
    root: Path, base: TrainedModel, parameters: dict[str, Any], datasets: dict[str, Sequence[Asset]]
) -> Path:
    """A training job's workspace in `root`: job.json, parameters.json, base_model/, datasets/<alias>/."""
    root.mkdir(parents=True, exist_ok=True)
    version_id = str(uuid.uuid4())
    job = {"job_id": str(uuid.uuid4()), "run_id": str(uuid.uuid4()), "attempt": 1, "kind": "training"}
    (root / "job.json").write_text(
        json.dumps(job | {"parameters": parameters, "model_version_id": version_id})
    )
    (root / "parameters.json").write_text(json.dumps(parameters))
    (root / "base_model").mkdir(parents=True)
    (root / "base_model" / "model.onnx").write_bytes(base.onnx)
    version = {
        "id": version_id,
        "version": "1",
        "detection_type": DetectionType.CLASSIFICATION,
        "labels": base.labels,
        "io": base.io.model_dump(mode="json"),
        "training_parameters": {},
    }
    (root / "base_model" / "model_version.json").write_text(json.dumps(version))
    for alias, assets in datasets.items():
        folder = root / "datasets" / alias
        (folder / "images").mkdir(parents=True)
        lines = []
        for asset in assets:
            asset_id = str(uuid.uuid4())
            (folder / "images" / f"{asset_id}.png").write_bytes(png(asset.pixels))
            annotation = asset.annotation.model_dump(mode="json") if asset.annotation else None
            lines.append(
                json.dumps({"asset_id": asset_id, "file": f"images/{asset_id}.png", "annotation": annotation})
            )
        (folder / "assets.jsonl").write_text("\n".join(lines) + "\n")
        (folder / "labels.json").write_text(json.dumps(base.labels))
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
