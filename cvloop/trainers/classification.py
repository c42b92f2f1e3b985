"""The reference trainer for image classification, run by the job runner inside a job workspace:

    CVLOOP_JOB_DIR=<workspace> python -m cvloop.trainers.classification

It fine-tunes the base model version's dense classifier (as `services.common.domain.onnx_graphs` writes it) on
every dataset alias except `test`, with the images preprocessed exactly as serving does, and evaluates the
base and the fine-tuned model on `test` when there is one. It writes outputs/model.onnx (same input,
output and labelmap as the base), outputs/labels.json and outputs/metrics.json. Logs are JSON lines on
stderr, one per epoch; a bad input exits 1 with one plain line naming the problem.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from uuid import UUID

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from schemas.job_workspace import TEST_ALIAS
from schemas.model_io import ModelIO
from schemas.model_version import LABELS_FILE, METRICS_FILE, MODEL_FILE
from schemas.predictions import ClassificationPrediction, DetectionType, Prediction
from services.common.domain.images import InvalidImage, decode_image
from services.common.domain.onnx_graphs import (
    DenseClassifier,
    UnsupportedGraph,
    dense_classifier,
    read_dense_classifier,
)
from services.common.domain.preprocess import preprocess

from . import dense
from .entrypoint import run_in_workspace
from .workspace import JobInputError, Workspace

logger = logging.getLogger("cvloop.trainers.classification")

# Staged files are local and the pixel count is bounded by decode_image; this only refuses absurd files.
MAX_IMAGE_BYTES = 64 * 1024 * 1024


class TrainingParameters(BaseModel):
    """parameters.json (the experiment's training parameters). Unknown names are refused, so a typo
    fails the run instead of being ignored."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(20, ge=1, le=1000, description="Passes over the training assets.")
    learning_rate: float = Field(0.001, gt=0.0, le=1.0, description="Adam's step size.")
    batch_size: int = Field(32, ge=1, le=65536, description="Assets per gradient step.")
    l2_to_base: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="L2 penalty on the weights' distance from the base model's (L2-SP).",
    )
    seed: int = Field(0, ge=0, description="Shuffling seed: the same inputs give the same model.")


@dataclass(frozen=True)
class Examples:
    x: dense.Array  # (assets, features): preprocessed and flattened as the ONNX graph's Flatten does
    y: dense.Labels  # index into the labelmap
    unlabelled: int  # assets without an annotation (or with no class), left out


def label_of(asset_id: str, annotation: Prediction | None) -> str | None:
    """The annotated class (the best-scored one), None when the asset has no annotation yet."""
    if annotation is None or not annotation.classes:
        return None
    if not isinstance(annotation, ClassificationPrediction):
        raise JobInputError(f"asset {asset_id} has a {annotation.type} annotation; this trainer classifies")
    return annotation.classes[int(np.argmax(annotation.scores))]


def check_compatible(model: DenseClassifier, io: ModelIO, labels: list[str]) -> None:
    """The graph takes what the io's preprocessing makes and scores every label of the labelmap."""
    channels = 1 if io.color == "gray" else 3
    if io.layout != "NCHW" or io.dtype != "float32":
        raise JobInputError(f"io is {io.layout} {io.dtype}; a dense classifier takes NCHW float32")
    if model.input_shape != (channels, io.height, io.width):
        raise JobInputError(
            f"the graph takes images of shape {model.input_shape}; "
            f"io makes ({channels}, {io.height}, {io.width})"
        )
    classes = model.layers[-1][0].shape[1]
    if classes != len(labels):
        raise JobInputError(f"the graph scores {classes} classes but the labelmap has {len(labels)} labels")


def unknown_labels_message(unknown: Counter[str], examples: dict[str, str]) -> str:
    listed = ", ".join(
        f"{label!r} ({n} assets, e.g. {examples[label]})" for label, n in unknown.most_common(5)
    )
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    return (
        f"{unknown.total()} assets have labels outside the base model's labelmap: {listed}{more}; the "
        "fine-tuned model keeps the base model's classes, so correct those annotations or start from a "
        "model version whose labelmap has them"
    )


def load_examples(workspace: Workspace, aliases: list[str], io: ModelIO, labels: list[str]) -> Examples:
    index = {label: i for i, label in enumerate(labels)}
    rows: list[dense.Array] = []
    targets: list[int] = []
    unlabelled = 0
    unknown: Counter[str] = Counter()
    unknown_example: dict[str, str] = {}
    for alias in aliases:
        before = len(rows)
        for asset in workspace.assets(alias):
            label = label_of(str(asset.asset_id), asset.annotation)
            if label is None:
                unlabelled += 1
                continue
            if label not in index:
                unknown[label] += 1
                unknown_example.setdefault(label, str(asset.asset_id))
                continue
            try:
                pixels = decode_image(workspace.asset_bytes(alias, asset), MAX_IMAGE_BYTES).pixels
            except InvalidImage as exc:
                raise JobInputError(f"asset {asset.asset_id} of {alias} ({asset.file}): {exc}") from None
            rows.append(preprocess(pixels, io).reshape(-1))
            targets.append(index[label])
        logger.info("dataset loaded", extra={"alias": alias, "assets": len(rows) - before})
    if unknown:
        raise JobInputError(unknown_labels_message(unknown, unknown_example))
    x = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    return Examples(x, np.asarray(targets, np.int64), unlabelled)


@dataclass(frozen=True)
class Base:
    """The base model version, checked: its graph's layers, its io and its labelmap."""

    version_id: UUID
    model: DenseClassifier
    io: ModelIO
    labels: list[str]


def load_base(workspace: Workspace) -> Base:
    version = workspace.base_model_version()
    if version.detection_type != DetectionType.CLASSIFICATION:
        raise JobInputError(
            f"the base model version is a {version.detection_type} model; this trainer classifies"
        )
    if version.io is None:
        raise JobInputError("base_model/model_version.json has no io: the images cannot be preprocessed")
    if not version.labels:
        raise JobInputError("the base model version has no labelmap: nothing names the classes it scores")
    try:
        model = read_dense_classifier(workspace.base_model_bytes())
    except UnsupportedGraph as exc:
        raise JobInputError(f"base_model/model.onnx: {exc}") from None
    check_compatible(model, version.io, version.labels)
    return Base(version.id, model, version.io, version.labels)


def train(workspace: Workspace) -> dict[str, float]:
    """The whole run: read, fine-tune, evaluate, write outputs; the metrics written."""
    parameters = workspace.parameters(TrainingParameters)
    base = load_base(workspace)
    logger.info(
        "fine-tuning",
        extra={
            "base_model_version": str(base.version_id),
            "layers": [w.shape for w, _ in base.model.layers],
            **parameters.model_dump(),
        },
    )

    aliases = workspace.aliases()
    training = load_examples(workspace, [a for a in aliases if a != TEST_ALIAS], base.io, base.labels)
    test = load_examples(workspace, [TEST_ALIAS] if TEST_ALIAS in aliases else [], base.io, base.labels)
    if not len(training.y):
        raise JobInputError(
            f"no annotated assets to train on in the aliases {[a for a in aliases if a != TEST_ALIAS]}"
        )
    metrics: dict[str, float] = {
        "train_assets": len(training.y),
        "test_assets": len(test.y),
        "unlabelled_assets": training.unlabelled + test.unlabelled,
    }
    if len(test.y):
        metrics["accuracy_before"] = dense.accuracy(base.model.layers, test.x, test.y)
        logger.info("base model evaluated", extra={"accuracy_before": metrics["accuracy_before"]})
    else:
        logger.warning("no `test` alias: accuracy before and after are not measured")

    layers, rng = base.model.layers, np.random.default_rng(parameters.seed)
    optimizer = dense.Adam(parameters.learning_rate)
    started = time.perf_counter()
    for epoch in range(1, parameters.epochs + 1):
        layers, loss = dense.train_epoch(
            layers,
            training.x,
            training.y,
            optimizer,
            parameters.batch_size,
            rng,
            base.model.layers,
            parameters.l2_to_base,
        )
        progress = {"epoch": epoch, "epochs": parameters.epochs, "loss": round(loss, 5)}
        progress["train_accuracy"] = round(dense.accuracy(layers, training.x, training.y), 5)
        if len(test.y):
            progress["test_accuracy"] = round(dense.accuracy(layers, test.x, test.y), 5)
        logger.info("epoch", extra=progress)
    metrics |= {"train_seconds": time.perf_counter() - started, "train_loss": loss}
    metrics["train_accuracy"] = dense.accuracy(layers, training.x, training.y)
    if len(test.y):
        metrics["accuracy_after"] = dense.accuracy(layers, test.x, test.y)

    workspace.write_output(
        MODEL_FILE, dense_classifier(layers, base.model.input_shape, softmax=base.model.softmax)
    )
    workspace.write_json_output(LABELS_FILE, base.labels)
    workspace.write_json_output(METRICS_FILE, metrics)
    logger.info("model written", extra=metrics)
    return metrics


def main() -> None:
    run_in_workspace(train, "training")


if __name__ == "__main__":
    main()
