"""The image features every `predictions` event carries: one function, used by serving, ingest and the
training-data reference job, so production and training are described the same way.

Image features (from the decoded RGB pixels; every value is a plain float):

| name | definition |
| --- | --- |
| `brightness` | mean luminance (Rec. 601: 0.299 R + 0.587 G + 0.114 B), scaled to [0, 1] |
| `contrast` | standard deviation of the luminance, scaled to [0, 1] |
| `mean_red`, `mean_green`, `mean_blue` | per-channel means, scaled to [0, 1] |
| `sharpness` | variance of the 4-neighbour Laplacian of the [0, 1] luminance (0 under 3x3 pixels) |
| `entropy` | Shannon entropy of the 256-bin luminance histogram, in bits / 8, so in [0, 1] |
| `aspect_ratio` | width / height |
| `size` | log10(width x height) |

Prediction features (from the champion's answer, when there is one):

- classification: `top1_confidence`; `top1_margin` (top-1 minus top-2 score); `score_entropy` (entropy
  of the scores normalised to sum 1, divided by log(number of classes); 0 for one class);
- detection and segmentation: `shape_count`; `mean_score` (0 without shapes).

Beside the features, `image_dhash` is the image's difference hash (64 bits as 16 hex digits): the
luminance shrunk to 9x8 by area means, one bit per horizontally adjacent pair (left brighter than right).
Re-encoding, resizing and small changes of brightness leave it unchanged, so the review queue shows
near-duplicates once.

Reference data (a dataset version) has no model answer, so the training-data reference holds the image
features only; prediction features are compared between windows of production traffic.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .predictions import ClassificationPrediction, Prediction

IMAGE_FEATURES: tuple[str, ...] = (
    "brightness",
    "contrast",
    "mean_red",
    "mean_green",
    "mean_blue",
    "sharpness",
    "entropy",
    "aspect_ratio",
    "size",
)
CLASSIFICATION_FEATURES: tuple[str, ...] = ("top1_confidence", "top1_margin", "score_entropy")
SHAPE_FEATURES: tuple[str, ...] = ("shape_count", "mean_score")

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

RgbImage = npt.NDArray[np.uint8]  # height x width x 3


def image_features(pixels: RgbImage) -> dict[str, float]:
    """The image features of an RGB uint8 array of shape (height, width, 3)."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 array of shape (h, w, 3), got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    rgb = pixels.astype(np.float32) / 255.0
    luma = rgb @ _LUMA
    channel_means = rgb.reshape(-1, 3).mean(axis=0)
    if height >= 3 and width >= 3:
        laplacian = (
            luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4.0 * luma[1:-1, 1:-1]
        )
        sharpness = float(laplacian.var())
    else:
        sharpness = 0.0
    histogram = np.bincount(np.rint(luma * 255.0).astype(np.uint8).ravel(), minlength=256)
    p = histogram[histogram > 0] / luma.size
    return {
        "brightness": float(luma.mean()),
        "contrast": float(luma.std()),
        "mean_red": float(channel_means[0]),
        "mean_green": float(channel_means[1]),
        "mean_blue": float(channel_means[2]),
        "sharpness": sharpness,
        "entropy": float(-(p * np.log2(p)).sum() / 8.0),
        "aspect_ratio": width / height,
        "size": float(np.log10(width * height)),
    }


def _area_means(luma: npt.NDArray[np.float32], rows: int, cols: int) -> npt.NDArray[np.float64]:
    """`luma` shrunk to rows x cols, each cell the mean of its pixels (at least one pixel per cell)."""
    integral = np.pad(luma.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def edges(size: int, cells: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        bounds = np.floor(np.linspace(0, size, cells + 1)).astype(np.int64)
        starts = np.minimum(bounds[:-1], size - 1)
        return starts, np.maximum(bounds[1:], starts + 1)

    (r0, r1), (c0, c1) = edges(luma.shape[0], rows), edges(luma.shape[1], cols)
    sums = (
        integral[r1][:, c1] - integral[r0][:, c1] - integral[r1][:, c0] + integral[r0][:, c0]
    )  # fmt: skip
    return sums / np.outer(r1 - r0, c1 - c0)


def image_dhash(pixels: RgbImage) -> str:
    """The difference hash of an RGB uint8 image, as 16 hex digits (see the module's note)."""
    cells = _area_means(pixels.astype(np.float32) @ (_LUMA * 255.0), 8, 9)
    bits = (cells[:, :-1] > cells[:, 1:]).ravel()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def prediction_features(prediction: Prediction) -> dict[str, float]:
    """The features of a model's answer: confidence shape for classification, shape statistics else."""
    scores = np.asarray(prediction.scores, dtype=np.float64)
    if isinstance(prediction, ClassificationPrediction):
        if scores.size == 0:
            return dict.fromkeys(CLASSIFICATION_FEATURES, 0.0)
        ranked = np.sort(scores)[::-1]
        margin = ranked[0] - ranked[1] if ranked.size > 1 else ranked[0]
        total = scores.sum()
        entropy = 0.0
        if ranked.size > 1 and total > 0:
            p = scores[scores > 0] / total
            entropy = float(-(p * np.log(p)).sum() / np.log(scores.size))
        return {"top1_confidence": float(ranked[0]), "top1_margin": float(margin), "score_entropy": entropy}
    return {"shape_count": float(scores.size), "mean_score": float(scores.mean()) if scores.size else 0.0}


def features(pixels: RgbImage, champion: Prediction | None = None) -> dict[str, float]:
    """Everything a `predictions` event carries in `features`."""
    values = image_features(pixels)
    if champion is not None:
        values |= prediction_features(champion)
    return values
