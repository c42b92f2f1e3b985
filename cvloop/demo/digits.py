"""Small ONNX models for scikit-learn's bundled digits (8x8 grey images, 1797 of them), trained in
seconds on the CPU: the demo deployment's champion, a different shadow, a detector for box
predictions; the digits rendered as PNG files (real images for the tests and the benchmark), and as
RGB images with the shifts production may bring, for scoring.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from schemas.features import IMAGE_FEATURES, RgbImage, image_features
from schemas.model_io import ModelIO
from services.common.domain.onnx_graphs import box_detector, dense_classifier

SIDE = 8  # digits are 8x8
LABELS = [str(digit) for digit in range(10)]
# The model sees what serving's preprocessing makes of a rendered digit: grey, 8x8, pixels / 255.
DIGITS_IO = ModelIO(width=SIDE, height=SIDE, layout="NCHW", color="gray", dtype="float32")
DETECTOR_LABELS = ["digit", "stroke", "background"]
DETECTOR_IO = ModelIO(
    width=32,
    height=32,
    layout="NCHW",
    color="rgb",
    dtype="float32",
    box_format="xyxy_normalized",
    outputs={"boxes": "boxes", "scores": "scores", "classes": "classes"},
)


@dataclass(frozen=True)
class TrainedModel:
    onnx: bytes
    io: ModelIO
    labels: list[str]
    accuracy: float  # on the held-out quarter of the digits


@cache
def digit_pixels() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The digits as uint8 grey pixels (0-255, as a PNG holds them) and their labels."""
    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return pixels, digits.target.astype(np.int64)


def digit_png(index: int, size: int = 32) -> bytes:
    """Digit number `index` as a `size` x `size` grey PNG (nearest-neighbour upscaled)."""
    pixels, _ = digit_pixels()
    image = Image.fromarray(pixels[index % len(pixels)], mode="L").resize((size, size), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def digit_label(index: int) -> str:
    _, labels = digit_pixels()
    return LABELS[labels[index % len(labels)]]


def split_indices() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The indices of the digits the models here train on (three quarters) and of those held out."""
    order = np.random.default_rng(0).permutation(len(digit_pixels()[1]))
    cut = len(order) * 3 // 4
    return order[:cut], order[cut:]


def _split() -> tuple[npt.NDArray[np.float32], ...]:
    pixels, labels = digit_pixels()
    x = pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0
    train, held_out = split_indices()
    return x[train], labels[train], x[held_out], labels[held_out]


def train_linear_classifier() -> TrainedModel:
    """Multinomial logistic regression: Flatten -> Gemm -> Softmax."""
    x_train, y_train, x_test, y_test = _split()
    model = LogisticRegression(max_iter=500, C=10.0).fit(x_train, y_train)
    onnx_bytes = dense_classifier(
        [(model.coef_.T.astype(np.float32), model.intercept_.astype(np.float32))], (1, SIDE, SIDE)
    )
    return TrainedModel(onnx_bytes, DIGITS_IO, LABELS, float(model.score(x_test, y_test)))


def train_mlp_classifier(hidden: int = 32, seed: int = 1) -> TrainedModel:
    """A one-hidden-layer perceptron: Flatten -> Gemm -> Relu -> Gemm -> Softmax."""
    x_train, y_train, x_test, y_test = _split()
    with warnings.catch_warnings(category=ConvergenceWarning, action="ignore"):  # good enough for a demo
        model = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=300, random_state=seed).fit(
            x_train, y_train
        )
    layers = [
        (w.astype(np.float32), b.astype(np.float32))
        for w, b in zip(model.coefs_, model.intercepts_, strict=True)
    ]
    onnx_bytes = dense_classifier(layers, (1, SIDE, SIDE))
    return TrainedModel(onnx_bytes, DIGITS_IO, LABELS, float(model.score(x_test, y_test)))


# The detector's fixed boxes (normalised), their classes (indices into DETECTOR_LABELS) and weights.
DETECTOR_BOXES = ((0.1, 0.1, 0.6, 0.6), (0.5, 0.5, 0.9, 0.9), (0.0, 0.0, 1.0, 1.0))
DETECTOR_CLASSES = (0, 1, 2)
DETECTOR_WEIGHTS = (0.9, 0.6, 0.2)


def box_detector_model() -> TrainedModel:
    """Not trained: fixed boxes scored by the image's brightness (see onnx_graphs.box_detector)."""
    onnx_bytes = box_detector(DETECTOR_BOXES, DETECTOR_CLASSES, DETECTOR_WEIGHTS, (3, 32, 32))
    return TrainedModel(onnx_bytes, DETECTOR_IO, DETECTOR_LABELS, accuracy=float("nan"))


# The digits as RGB images for scoring (tests and benches), and the shifts production may bring (rotated,
# darkened, noisy).
IMAGE_SIDE = 32  # the 8x8 digits upscaled, so rotation and noise act on more than a handful of pixels


def digit_images() -> list[RgbImage]:
    """The 1,797 digits as 32x32 RGB uint8 images, white strokes on black."""
    pixels, _ = digit_pixels()
    return [
        np.asarray(
            Image.fromarray(gray).resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BILINEAR).convert("RGB")
        )
        for gray in pixels
    ]


def rotated(pixels: RgbImage, rng: np.random.Generator) -> RgbImage:
    angle = float(rng.uniform(10.0, 20.0) * rng.choice([-1.0, 1.0]))
    return np.asarray(Image.fromarray(pixels).rotate(angle, resample=Image.Resampling.BILINEAR))


def darkened(pixels: RgbImage, rng: np.random.Generator) -> RgbImage:
    return np.rint(pixels * rng.uniform(0.75, 0.9)).astype(np.uint8)


def noisy(pixels: RgbImage, rng: np.random.Generator) -> RgbImage:
    noise = rng.normal(0.0, 8.0, size=pixels.shape[:2])[..., None]
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


SHIFTS: dict[str, Callable[[RgbImage, np.random.Generator], RgbImage]] = {
    "rotated": rotated,
    "darkened": darkened,
    "noisy": noisy,
}


def feature_matrix(images: list[RgbImage]) -> np.ndarray:
    """One row of IMAGE_FEATURES per image, with the shared feature function."""
    return np.array([[image_features(p)[name] for name in IMAGE_FEATURES] for p in images])


def png(pixels: RgbImage) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()
