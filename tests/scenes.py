"""Generated test pictures: a smooth gradient with a few filled shapes, as PNG (deterministic by seed)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def scene(seed: int, width: int, height: int) -> bytes:
    """A width x height picture: a gradient with five filled ellipses or rectangles, as PNG."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:height, :width]
    pixels = np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) * 255 // (width + height)], axis=-1)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        x, y = rng.integers(0, width - 80), rng.integers(0, height - 80)
        w, h = rng.integers(40, 160, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + w, y + h), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
