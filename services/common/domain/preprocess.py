"""Decoded RGB pixels -> a model's input tensor, as its ModelIO says (pure): serving calls models with it
and the reference trainer trains on it, so a model sees the same tensors in both."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from schemas.features import RgbImage
from schemas.model_io import ModelIO

Tensor = npt.NDArray[np.generic]


def preprocess(pixels: RgbImage, io: ModelIO) -> Tensor:
    """Resize (bilinear) to the model's size, convert the colour, scale and normalise, lay out, and add
    the batch dimension: shape (1, C, H, W) for NCHW, (1, H, W, C) for NHWC."""
    image = Image.fromarray(pixels, mode="RGB")
    if (image.width, image.height) != (io.width, io.height):
        image = image.resize((io.width, io.height), Image.BILINEAR)
    if io.color == "gray":
        values = np.asarray(image.convert("L"))[:, :, np.newaxis]
    else:
        values = np.asarray(image)
        if io.color == "bgr":
            values = values[:, :, ::-1]
    if io.dtype == "uint8":
        tensor: Tensor = np.ascontiguousarray(values, dtype=np.uint8)
    else:
        scaled = values.astype(np.float32) * np.float32(io.scale)
        tensor = (scaled - np.asarray(io.mean, np.float32)) / np.asarray(io.std, np.float32)
    if io.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor[np.newaxis])
