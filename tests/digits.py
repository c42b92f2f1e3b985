"""Real images for scoring tests and benchmarks: scikit-learn's bundled handwritten digits (no download),
as RGB images, and the shifts production may bring (rotated, darkened, noisy)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from schemas.features import IMAGE_FEATURES, RgbImage, image_features

SIDE = 32  # the 8x8 digits upscaled, so rotation and noise act on more than a handful of pixels


def digit_images() -> list[RgbImage]:
    """The 1,797 digits as 32x32 RGB uint8 images, white strokes on black."""
    images = []
    for digit in load_digits().images:
        gray = Image.fromarray(np.rint(digit * (255.0 / 16.0)).astype(np.uint8))
        images.append(np.asarray(gray.resize((SIDE, SIDE), Image.Resampling.BILINEAR).convert("RGB")))
    return images


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
