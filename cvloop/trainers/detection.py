"""The PyTorch reference trainer for detection: `python -m cvloop.trainers.detection` in the torch trainer
image, which the local job backend runs with the torch environment's Python (scripts/install_torch.sh;
docs/trainers.md).

It fine-tunes the base model version's checkpoint (base_model/model.pt), or starts fresh when the version
carries none, on every dataset alias but `test`, `val` and `rehearsal` (old data: each epoch samples at most
`rehearsal_ratio` x the other training images from it, against forgetting); logs one JSON line per epoch
(loss, rehearsal images, val AP); writes outputs/model.onnx (the nms_free preset), io.json (how serving
calls it: `detection_data.detector_io`), model.pt, labels.json and metrics.json (COCO AP@[.5:.95], AP50,
AR on `test`, before and after).

The detector is CenterNet-like, from torchvision's Conv2dNormActivation blocks: a stride-8 backbone of
six 3x3 convolutions (batch norm, ReLU; two dilated), upsampled to stride 4 with a skip, and three 1x1
heads (a heat map per class, box size, centre offset). Why: no anchors and no NMS (peaks are a 3x3 max
pool), so the whole decoding is a few tensor operations that export to ONNX as they are, 0.17 M
parameters train in minutes on two CPU cores at 64 x 64, and the loss is two terms over a dense target."""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation, sigmoid_focal_loss

from schemas.job_workspace import TEST_ALIAS
from schemas.model_version import CHECKPOINT_FILE, IO_FILE, LABELS_FILE, METRICS_FILE, MODEL_FILE
from schemas.predictions import DetectionPrediction, DetectionType
from services.common.domain.coco import detection_quality

from .detection_data import (
    REHEARSAL_ALIAS,
    VAL_ALIAS,
    DetectionParameters,
    DetectionSet,
    detector_io,
    read_alias,
)
from .entrypoint import run_in_workspace
from .workspace import JobInputError, Workspace

logger = logging.getLogger("cvloop.trainers.detection")

ARCHITECTURE = "centernet-tiny-v1"  # in the checkpoint: what its state dict fits
STRIDE = 4
TOP_K = 20  # detections the exported graph answers (scores below the deployment's threshold dropped)
DEFAULT_SIDE = 64


class TinyCenterNet(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes
        self.stem = nn.Sequential(
            Conv2dNormActivation(3, 16, stride=2), Conv2dNormActivation(16, 32, stride=2)
        )
        self.deep = nn.Sequential(
            Conv2dNormActivation(32, 64, stride=2),
            Conv2dNormActivation(64, 64),
            Conv2dNormActivation(64, 64, dilation=2),
            Conv2dNormActivation(64, 64, dilation=4),
        )
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.skip = nn.Conv2d(32, 64, 1)
        self.neck = Conv2dNormActivation(64, 64)
        self.heat = nn.Conv2d(64, classes, 1)
        self.size = nn.Conv2d(64, 2, 1)  # log of the box's width, height in stride units
        self.offset = nn.Conv2d(64, 2, 1)  # the centre within its cell, 0-1
        nn.init.constant_(self.heat.bias, -math.log(99.0))  # start at p = 0.01: the focal loss's prior

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shallow = self.stem(images)
        features = self.neck(self.up(self.deep(shallow)) + self.skip(shallow))
        return self.heat(features), self.size(features), self.offset(features)


class Exported(nn.Module):
    """The detector with its decoding, as serving runs it: (1, 3, S, S) -> (1, K, 6) nms_free rows."""

    def __init__(self, model: TinyCenterNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return decode(*self.model(images))


def decode(heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Heat map peaks (a cell that is its 3x3 neighbourhood's maximum) -> (N, K, 6) boxes in input
    pixels, score, class; best first."""
    n, classes, h, w = heat.shape
    heat = heat.sigmoid()
    peaks = heat * (nn.functional.max_pool2d(heat, 3, stride=1, padding=1) == heat).to(heat.dtype)
    scores, index = peaks.reshape(n, -1).topk(min(TOP_K, classes * h * w), dim=1)
    cls = torch.div(index, h * w, rounding_mode="floor")
    cell = index - cls * h * w
    y = torch.div(cell, w, rounding_mode="floor")
    x = cell - y * w
    size = size.reshape(n, 2, -1).gather(2, cell[:, None, :].expand(n, 2, cell.shape[1])).exp() * STRIDE
    offset = offset.reshape(n, 2, -1).gather(2, cell[:, None, :].expand(n, 2, cell.shape[1]))
    cx = (x.to(heat.dtype) + offset[:, 0]) * STRIDE
    cy = (y.to(heat.dtype) + offset[:, 1]) * STRIDE
    half_w, half_h = size[:, 0] / 2, size[:, 1] / 2
    rows = [cx - half_w, cy - half_h, cx + half_w, cy + half_h, scores, cls.to(heat.dtype)]
    return torch.stack(rows, dim=2)


def targets(data: DetectionSet, classes: int, side: int) -> tuple[torch.Tensor, ...]:
    """Dense targets: a Gaussian heat map per class, and at each box's centre cell its log size and
    offset (mask 1)."""
    cells = side // STRIDE
    heat = np.zeros((len(data), classes, cells, cells), np.float32)
    size = np.zeros((len(data), 2, cells, cells), np.float32)
    offset = np.zeros((len(data), 2, cells, cells), np.float32)
    mask = np.zeros((len(data), cells, cells), np.float32)
    grid_y, grid_x = np.mgrid[0:cells, 0:cells]
    for i, (labels, boxes) in enumerate(zip(data.classes, data.boxes, strict=True)):
        for label, (x1, y1, x2, y2) in zip(labels, boxes, strict=True):
            w, h = max(x2 - x1, 1.0) / STRIDE, max(y2 - y1, 1.0) / STRIDE
            cx, cy = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
            col, row = min(int(cx), cells - 1), min(int(cy), cells - 1)
            sigma = max(min(w, h) / 6, 0.5)
            blob = np.exp(-((grid_x - col) ** 2 + (grid_y - row) ** 2) / (2 * sigma**2))
            heat[i, label] = np.maximum(heat[i, label], blob)
            size[i, :, row, col] = np.log([w, h])
            offset[i, :, row, col] = (cx - col, cy - row)
            mask[i, row, col] = 1.0
    return tuple(torch.from_numpy(a) for a in (heat, size, offset, mask))


def loss_of(outputs: tuple[torch.Tensor, ...], batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    heat, size, offset = outputs
    heat_t, size_t, offset_t, mask = batch
    centres = max(float(mask.sum()), 1.0)
    # The focal loss against a hard centre with the Gaussian's neighbours down-weighted (CenterNet's).
    near = (1 - heat_t) ** 4
    focal = sigmoid_focal_loss(heat, (heat_t == 1).to(heat.dtype), reduction="none")
    focal = torch.where(heat_t == 1, focal, focal * near).sum() / centres
    m = mask[:, None]
    regression = (
        nn.functional.l1_loss(size * m, size_t * m, reduction="sum") * 0.1
        + nn.functional.l1_loss(offset * m, offset_t * m, reduction="sum")
    ) / centres
    return focal + regression


def predict(model: TinyCenterNet, images: np.ndarray, device: torch.device, batch: int = 64) -> np.ndarray:
    model.eval()
    found = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            chunk = torch.from_numpy(images[start : start + batch]).to(device)
            found.append(decode(*model(chunk)).cpu().numpy())
    return np.concatenate(found) if found else np.zeros((0, TOP_K, 6), np.float32)


def quality(
    model: TinyCenterNet, data: DetectionSet, labels: list[str], device: torch.device
) -> dict[str, float]:
    """COCO AP@[.5:.95], AP50 and AR of the model's answers (every score kept, as COCO does)."""
    pairs = []
    for truth, rows in zip(data.truths, predict(model, data.images, device), strict=True):
        rows = rows[rows[:, 4] > 0]
        boxes = [tuple(float(v) for v in box) for box in rows[:, :4]]
        answer = DetectionPrediction(
            classes=[labels[int(c)] for c in rows[:, 5]], scores=rows[:, 4].clip(0, 1).tolist(), boxes=boxes
        )
        pairs.append((truth, answer))
    found = detection_quality(pairs)
    return {"ap": found.ap, "ap50": found.ap50, "ar": found.ar}


def _checkpoint(workspace: Workspace, labels: list[str]) -> dict[str, Any] | None:
    path = workspace.base_model_checkpoint
    if not path.exists():
        return None
    where = workspace.relative(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise JobInputError(f"{where} is not a readable checkpoint: {exc}") from None
    if not isinstance(saved, dict) or saved.get("architecture") != ARCHITECTURE:
        raise JobInputError(f"{where} is not a {ARCHITECTURE} checkpoint")
    if saved.get("labels") != labels:
        raise JobInputError(f"{where} scores the labels {saved.get('labels')}, the labelmap has {labels}")
    return saved


def _concatenated(parts: list[DetectionSet], side: int) -> DetectionSet:
    return DetectionSet(
        images=np.concatenate([p.images for p in parts])
        if parts
        else np.zeros((0, 3, side, side), np.float32),
        truths=[t for p in parts for t in p.truths],
        classes=[c for p in parts for c in p.classes],
        boxes=[b for p in parts for b in p.boxes],
        unannotated=sum(p.unannotated for p in parts),
    )


def _training_set(workspace: Workspace, aliases: list[str], labels: list[str], side: int) -> DetectionSet:
    return _concatenated([read_alias(workspace, alias, labels, side) for alias in aliases], side)


def _epoch_order(generator: np.random.Generator, trained: int, rehearsal: int, rehearsed: int) -> np.ndarray:
    """An epoch's image indices into training + rehearsal, shuffled: every training image and `rehearsed`
    rehearsal images drawn afresh (indices from `trained` on)."""
    if not rehearsed:
        return generator.permutation(trained)
    drawn = trained + generator.choice(rehearsal, rehearsed, replace=False)
    return generator.permutation(np.concatenate([np.arange(trained), drawn]))


def export_onnx(model: TinyCenterNet, side: int, path: Path) -> None:
    """The traced graph (the recipe of tests/models_build.py): at a fixed size every shape is constant,
    so the tracer's warnings about them say nothing here."""
    model.eval()
    with warnings.catch_warnings(action="ignore", category=torch.jit.TracerWarning):
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export")
        torch.onnx.export(
            Exported(model).cpu(),
            (torch.zeros(1, 3, side, side),),
            str(path),
            opset_version=17,
            input_names=["images"],
            output_names=["detections"],
            dynamo=False,
        )


def train(workspace: Workspace) -> None:
    started = time.monotonic()
    parameters = workspace.parameters(DetectionParameters)
    version = workspace.base_model_version()
    if version.detection_type != DetectionType.DETECTION:
        raise JobInputError(f"the base model version is a {version.detection_type} model, not a detector")
    if not version.labels:
        raise JobInputError("the base model version has no labelmap: nothing names the classes it detects")
    labels = version.labels
    saved = _checkpoint(workspace, labels)
    side = parameters.image_size or (saved["image_size"] if saved else DEFAULT_SIDE)
    torch.manual_seed(parameters.seed)
    generator = np.random.default_rng(parameters.seed)
    device = torch.device(parameters.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    aliases = workspace.aliases()
    train_aliases = [a for a in aliases if a not in (TEST_ALIAS, VAL_ALIAS, REHEARSAL_ALIAS)]
    training = _training_set(workspace, train_aliases, labels, side)
    if not len(training):
        raise JobInputError(f"no annotated assets to train on in the aliases {train_aliases}")
    rehearsal = _training_set(
        workspace, [REHEARSAL_ALIAS] if REHEARSAL_ALIAS in aliases else [], labels, side
    )
    rehearsed = min(len(rehearsal), int(parameters.rehearsal_ratio * len(training)))
    val = read_alias(workspace, VAL_ALIAS, labels, side) if VAL_ALIAS in aliases else None
    test = read_alias(workspace, TEST_ALIAS, labels, side) if TEST_ALIAS in aliases else None
    logger.info(
        "data",
        extra={
            "train_assets": len(training),
            "rehearsal_assets": len(rehearsal),
            "val_assets": len(val or ()),
            "test_assets": len(test or ()),
            "unannotated_assets": training.unannotated,
            "image_size": side,
            "device": str(device),
            "fine_tuning": saved is not None,
        },
    )

    model = TinyCenterNet(len(labels))
    if saved is not None:
        model.load_state_dict(saved["state_dict"])
    model.to(device)
    metrics: dict[str, float] = {}
    if test is not None and len(test):
        metrics |= {f"{k}_before": v for k, v in quality(model, test, labels, device).items()}

    every = _concatenated([training, rehearsal], side)  # rehearsal images from index len(training) on
    dense = targets(every, len(labels), side)
    images = torch.from_numpy(every.images)
    optimizer = torch.optim.AdamW(model.parameters(), lr=parameters.learning_rate, weight_decay=1e-4)
    steps = parameters.epochs * math.ceil((len(training) + rehearsed) / parameters.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, parameters.learning_rate, total_steps=steps)
    for epoch in range(1, parameters.epochs + 1):
        model.train()
        order = _epoch_order(generator, len(training), len(rehearsal), rehearsed)
        total = 0.0
        for start in range(0, len(order), parameters.batch_size):
            pick = torch.from_numpy(order[start : start + parameters.batch_size])
            batch = images[pick]
            if parameters.augment:  # brightness and contrast of each image, as cameras differ
                gain = torch.empty(len(pick), 1, 1, 1).uniform_(0.4, 1.2)
                shift = torch.empty(len(pick), 1, 1, 1).uniform_(0.0, 0.4)
                batch = (batch * gain + shift * (1 - gain).clamp(min=0)).clamp(0, 1)
            loss = loss_of(model(batch.to(device)), tuple(t[pick].to(device) for t in dense))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(pick)
        entry: dict[str, Any] = {
            "epoch": epoch,
            "loss": round(total / len(order), 5),
            "rehearsal_images": rehearsed,
        }
        if val is not None and len(val):
            entry["val_ap"] = round(quality(model, val, labels, device)["ap"], 5)
        logger.info("epoch", extra=entry)

    if test is not None and len(test):
        metrics |= {f"{k}_after": v for k, v in quality(model, test, labels, device).items()}
    model.cpu()
    workspace.outputs.mkdir(parents=True, exist_ok=True)
    export_onnx(model, side, workspace.outputs / MODEL_FILE)
    checkpoint = {
        "architecture": ARCHITECTURE,
        "labels": labels,
        "image_size": side,
        "state_dict": model.state_dict(),
    }
    torch.save(checkpoint, workspace.outputs / CHECKPOINT_FILE)
    workspace.write_json_output(LABELS_FILE, labels)
    workspace.write_json_output(IO_FILE, detector_io(side).model_dump(mode="json"))
    metrics |= {
        "train_assets": len(training),
        "rehearsal_images_per_epoch": rehearsed,
        "test_assets": len(test or ()),
        "image_size": side,
        "train_seconds": round(time.monotonic() - started, 2),
    }
    workspace.write_json_output(METRICS_FILE, metrics)
    logger.info("metrics", extra=metrics)


def main() -> None:
    run_in_workspace(train, "training")


if __name__ == "__main__":
    main()
