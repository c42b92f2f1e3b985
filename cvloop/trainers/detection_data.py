"""What the PyTorch detection trainer (cvloop.trainers.detection) reads from its job workspace, without torch:
its parameters, and each dataset alias as input tensors with boxes in input pixels, the way serving feeds
the exported model (stretched to the image size, RGB, pixels / 255: `detector_io`)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from schemas.job_workspace import TORCH_TRAINER_IMAGE
from schemas.model_io import ModelIO
from schemas.predictions import DetectionPrediction
from schemas.vocabulary import OutputFormat

from .workspace import JobInputError, Workspace

VAL_ALIAS = "val"  # evaluated after each epoch when present, never trained on (like test)
# Old data mixed into fine-tuning against forgetting: each epoch samples at most `rehearsal_ratio` x the
# other training images from it, so a few dozen reviews are not drowned by hundreds of old scenes.
REHEARSAL_ALIAS = "rehearsal"


class DetectionParameters(BaseModel):
    """parameters.json of a detection training job (the experiment's parameters)."""

    model_config = ConfigDict(extra="ignore")

    # For a fine-tune on a few dozen reviews plus as many rehearsal images (what the continuous-training
    # loop triggers with): an epoch is a few steps, so many epochs (bench/detection_loop.py).
    epochs: int = Field(40, ge=1, le=1000)
    learning_rate: float = Field(0.003, gt=0.0, le=1.0)
    batch_size: int = Field(16, ge=1, le=1024)
    # None: the base checkpoint's, else 64. A multiple of the detector's stride.
    image_size: int | None = Field(None, ge=32, le=1024, multiple_of=8)
    # Rehearsal images an epoch samples, at most, per image of the other training aliases.
    rehearsal_ratio: float = Field(1.0, ge=0.0, le=100.0)
    seed: int = 0
    augment: bool = True  # brightness and contrast jitter
    device: str | None = None  # None: cuda when a GPU is visible, else cpu


def detector_training(tag: str = "dev") -> tuple[str, str]:
    """A detector version's training_entrypoint and training_image: this trainer in the torch job image
    (deploy/docker/trainer-torch.Dockerfile, built with the tag `tag`) on Kubernetes; the local backend
    runs the command with the torch environment's Python instead (JOBS_LOCAL_PYTHONS)."""
    return "python -m cvloop.trainers.detection", f"{TORCH_TRAINER_IMAGE}:{tag}"


def detector_io(side: int) -> ModelIO:
    """How serving calls the exported detector: one side x side RGB image in [0, 1], answering
    (1, K, 6) rows x1, y1, x2, y2 (input pixels), score, class."""
    return ModelIO(width=side, height=side, output_format=OutputFormat.NMS_FREE)


@dataclass(frozen=True)
class DetectionSet:
    """An alias's annotated images: inputs (N, 3, side, side) float32 in [0, 1], and per image its
    truth in input pixels (`truths`, for AP) and as class indices and boxes (for the loss)."""

    images: np.ndarray
    truths: list[DetectionPrediction]
    classes: list[np.ndarray]  # int64 (k,)
    boxes: list[np.ndarray]  # float32 (k, 4)
    unannotated: int  # assets without annotation, skipped

    def __len__(self) -> int:
        return len(self.truths)


def _scaled(truth: DetectionPrediction, sx: float, sy: float) -> DetectionPrediction:
    boxes = [(x1 * sx, y1 * sy, x2 * sx, y2 * sy) for x1, y1, x2, y2 in truth.boxes]
    return DetectionPrediction(classes=truth.classes, scores=truth.scores, boxes=boxes)


def read_alias(workspace: Workspace, alias: str, labels: list[str], side: int) -> DetectionSet:
    """Alias `alias` at `side` x `side`; an annotation that is not a detection, or names a label outside
    `labels`, raises JobInputError naming the asset."""
    index = {label: i for i, label in enumerate(labels)}
    images, truths, unannotated = [], [], 0
    for asset in workspace.assets(alias):
        if asset.annotation is None:
            unannotated += 1
            continue
        if not isinstance(asset.annotation, DetectionPrediction):
            raise JobInputError(f"asset {asset.asset_id} of {alias}: a {asset.annotation.type} annotation")
        outside = sorted(set(asset.annotation.classes) - index.keys())
        if outside:
            raise JobInputError(
                f"asset {asset.asset_id} of {alias}: labels outside the labelmap {labels}: {outside}"
            )
        try:
            image = Image.open(io.BytesIO(workspace.asset_bytes(alias, asset))).convert("RGB")
        except OSError as exc:
            raise JobInputError(f"asset {asset.asset_id} of {alias}: not an image: {exc}") from None
        truths.append(_scaled(asset.annotation, side / image.width, side / image.height))
        resized = image.resize((side, side), Image.Resampling.BILINEAR)
        images.append(np.asarray(resized, np.float32).transpose(2, 0, 1) / 255.0)
    return DetectionSet(
        images=np.stack(images) if images else np.zeros((0, 3, side, side), np.float32),
        truths=truths,
        classes=[np.array([index[c] for c in t.classes], np.int64) for t in truths],
        boxes=[np.array(t.boxes, np.float32).reshape(-1, 4) for t in truths],
        unannotated=unannotated,
    )
