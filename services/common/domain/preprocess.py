"""Decoded RGB pixels -> a model's input tensor, as its ModelIO says (pure): serving calls models with it
and the reference trainer trains on it, so a model sees the same tensors in both. The placement of the
image inside the input maps what the model answers in input pixels back to the original's pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from schemas.features import RgbImage
from schemas.model_io import ModelIO
from schemas.vocabulary import Resize

Tensor = npt.NDArray[np.generic]


@dataclass(frozen=True)
class Placement:
    """Where the original image lies in the model's input: input = original * scale + offset, per axis
    (the offset is the letterbox's padding, or minus the centre crop's cut)."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    width: int  # the original image's
    height: int

    def to_original(self, xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Points (..., 2) or boxes (..., 4) as x, y pairs in input pixels -> the original's pixels,
        clipped to the image."""
        values = np.asarray(xy, dtype=np.float64)
        pairs = values.reshape(*values.shape[:-1], values.shape[-1] // 2, 2)
        x = np.clip((pairs[..., 0] - self.offset_x) / self.scale_x, 0.0, self.width)
        y = np.clip((pairs[..., 1] - self.offset_y) / self.scale_y, 0.0, self.height)
        return np.stack([x, y], axis=-1).reshape(values.shape)


def placement(width: int, height: int, io: ModelIO) -> Placement:
    """The resized size and position of a width x height image in the model's input."""
    if io.resize == Resize.STRETCH:
        return Placement(io.width / width, io.height / height, 0.0, 0.0, width, height)
    fit = min if io.resize == Resize.LETTERBOX else max
    factor = fit(io.width / width, io.height / height)
    resized_w, resized_h = max(1, round(width * factor)), max(1, round(height * factor))
    # Letterbox: a positive offset (the padding); centre crop: a negative one (the cut), split evenly.
    offset_x, offset_y = (io.width - resized_w) // 2, (io.height - resized_h) // 2
    return Placement(resized_w / width, resized_h / height, offset_x, offset_y, width, height)


def _placed(pixels: RgbImage, io: ModelIO, where: Placement) -> npt.NDArray[np.uint8]:
    """The input-sized RGB image: resized (bilinear), then padded or cropped as `where` says."""
    image = Image.fromarray(pixels, mode="RGB")
    size = (round(where.width * where.scale_x), round(where.height * where.scale_y))
    if (image.width, image.height) != size:
        image = image.resize(size, Image.BILINEAR)
    if size == (io.width, io.height):
        return np.asarray(image)
    canvas = Image.new("RGB", (io.width, io.height), (io.pad_value,) * 3)
    canvas.paste(image, (int(where.offset_x), int(where.offset_y)))  # a negative offset crops
    return np.asarray(canvas)


@dataclass(frozen=True)
class Prepared:
    tensor: Tensor
    placement: Placement


def prepare(pixels: RgbImage, io: ModelIO) -> Prepared:
    """Resize (stretch, letterbox or centre crop), convert the colour, scale and normalise, lay out, and
    add the batch dimension: shape (1, C, H, W) for NCHW, (1, H, W, C) for NHWC."""
    where = placement(pixels.shape[1], pixels.shape[0], io)
    values = _placed(pixels, io, where)
    if io.color == "gray":
        values = np.asarray(Image.fromarray(values).convert("L"))[:, :, np.newaxis]
    elif io.color == "bgr":
        values = values[:, :, ::-1]
    if io.dtype == "uint8":
        tensor: Tensor = np.ascontiguousarray(values, dtype=np.uint8)
    else:
        scaled = values.astype(np.float32) * np.float32(io.scale)
        tensor = (scaled - np.asarray(io.mean, np.float32)) / np.asarray(io.std, np.float32)
    if io.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return Prepared(np.ascontiguousarray(tensor[np.newaxis]), where)


def preprocess(pixels: RgbImage, io: ModelIO) -> Tensor:
    """The model's input tensor alone (training, references)."""
    return prepare(pixels, io).tensor
