"""A generated detection world (no downloads): scikit-learn's digits placed at random positions and scales on
larger canvases with clutter, as a training set, and a production stream that drifts (another background,
lower contrast, smaller digits, a tint, another camera). Deterministic by seed; boxes in image pixels, as a
reviewer submits them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cvloop.demo.digits import LABELS, digit_pixels, split_indices
from schemas.features import RgbImage
from schemas.predictions import DetectionPrediction

CANVAS = 64  # pixels a side: small, so a detector trains in minutes on two CPU cores
MAX_DIGITS = 3


@dataclass(frozen=True)
class Condition:
    """How a camera sees the world: digit sizes, ink contrast, background and its clutter."""

    camera: str
    sizes: tuple[int, int]  # a digit's side in pixels, low and high (inclusive)
    contrast: tuple[float, float]  # the ink's brightness over the background, 0-1
    background: tuple[float, float]  # the background's mean level, 0-1
    gradient: float  # how much the background's level changes across the canvas
    tint: tuple[float, float, float]  # per channel gain
    clutter: int  # strokes that are not digits


TRAINING = Condition(
    camera="camera-a",
    sizes=(16, 28),
    contrast=(0.7, 1.0),
    background=(0.0, 0.15),
    gradient=0.0,
    tint=(1.0, 1.0, 1.0),
    clutter=4,
)
# What production brings: a brighter, sloping background, fainter and smaller digits, a warm tint.
DRIFTED = Condition(
    camera="camera-b",
    sizes=(11, 20),
    contrast=(0.3, 0.55),
    background=(0.3, 0.45),
    gradient=0.25,
    tint=(1.0, 0.85, 0.65),
    clutter=8,
)


@dataclass(frozen=True)
class Scene:
    pixels: RgbImage  # CANVAS x CANVAS x 3, uint8
    truth: DetectionPrediction  # every digit's box (pixels) and label, scores 1
    camera: str


def _overlaps(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    x1, y1, x2, y2 = box
    return any(x1 < b[2] and b[0] < x2 and y1 < b[3] and b[1] < y2 for b in placed)


def _background(condition: Condition, rng: np.random.Generator) -> np.ndarray:
    level = rng.uniform(*condition.background)
    slope = np.linspace(-condition.gradient, condition.gradient, CANVAS) * rng.choice([-1.0, 1.0])
    grey = level + (slope[None, :] if rng.random() < 0.5 else slope[:, None])
    grey = grey + rng.normal(0.0, 0.03, size=(CANVAS, CANVAS))
    return np.broadcast_to(grey, (CANVAS, CANVAS)).copy()


def _clutter(canvas: np.ndarray, condition: Condition, rng: np.random.Generator) -> None:
    """Thin straight strokes: edges a detector must learn are not digits."""
    for _ in range(condition.clutter):
        length = int(rng.integers(6, 20))
        x, y = (int(v) for v in rng.integers(0, CANVAS - length, size=2))
        level = rng.uniform(0.3, 0.8) * condition.contrast[1]
        if rng.random() < 0.5:
            canvas[y, x : x + length] += level
        else:
            canvas[y : y + length, x] += level


def scene(condition: Condition, rng: np.random.Generator, digits: np.ndarray) -> Scene:
    """One canvas with 1-MAX_DIGITS digits drawn from the indices `digits`, none overlapping."""
    pixels, targets = digit_pixels()
    canvas = _background(condition, rng)
    _clutter(canvas, condition, rng)
    placed: list[tuple[int, int, int, int]] = []
    labels: list[str] = []
    for _ in range(int(rng.integers(1, MAX_DIGITS + 1))):
        side = int(rng.integers(condition.sizes[0], condition.sizes[1] + 1))
        for _attempt in range(20):
            x, y = (int(v) for v in rng.integers(0, CANVAS - side + 1, size=2))
            box = (x, y, x + side, y + side)
            if not _overlaps(box, placed):
                break
        else:
            continue  # no room left: fewer digits
        index = int(rng.choice(digits))
        ink = np.asarray(
            Image.fromarray(pixels[index]).resize((side, side), Image.Resampling.BILINEAR), np.float64
        )
        canvas[y : y + side, x : x + side] += ink / 255.0 * rng.uniform(*condition.contrast)
        placed.append(box)
        labels.append(LABELS[int(targets[index])])
    rgb = np.clip(canvas[..., None] * np.array(condition.tint), 0.0, 1.0)
    truth = DetectionPrediction(
        classes=labels, scores=[1.0] * len(labels), boxes=[tuple(float(v) for v in b) for b in placed]
    )
    return Scene(np.rint(rgb * 255.0).astype(np.uint8), truth, condition.camera)


def scenes(condition: Condition, count: int, seed: int, held_out: bool = False) -> Iterator[Scene]:
    """`count` scenes seen under `condition`, the same for the same seed; `held_out`: drawn from the
    quarter of the digits the demo models never train on (split_indices), else from the other three."""
    train, test = split_indices()
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield scene(condition, rng, test if held_out else train)
