"""Image bytes -> checked, decoded RGB pixels, the same way for serving, ingest and the reference job.

The format is read from the bytes (never from a client's content type or file name); only JPEG, PNG and
WebP are accepted, and the pixel count is bounded so a small file cannot expand into a huge image: the
size is read from the header (Pillow's `Image.open` decodes nothing yet) and refused before any decoding.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from schemas.features import RgbImage

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_PIXELS = 40_000_000  # the default pixel budget: 40 megapixels (a 185-byte PNG may declare more)


class InvalidImage(ValueError):
    """The bytes are not an accepted image (answer 400/415, or dead-letter)."""


class ImageTooLarge(InvalidImage):
    """More bytes or pixels than allowed (answer 413)."""


@dataclass(frozen=True)
class DecodedImage:
    pixels: RgbImage  # height x width x 3, uint8
    content_type: str  # one of schemas.object_keys.IMAGE_CONTENT_TYPES

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def decode_image(data: bytes, max_bytes: int, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    if len(data) > max_bytes:
        raise ImageTooLarge(f"image is {len(data)} bytes; at most {max_bytes} are accepted")
    if not data:
        raise InvalidImage("image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
            if image.width * image.height > max_pixels:
                raise ImageTooLarge(
                    f"image is {image.width}x{image.height} pixels; at most {max_pixels} pixels are accepted"
                )
            content_type = FORMATS[image.format or ""]
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (past 89 megapixels), reached only with a budget set above it.
        raise ImageTooLarge(f"image is larger than Pillow decodes safely: {exc}") from None
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"not a JPEG, PNG or WebP image ({exc.__class__.__name__})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InvalidImage):
            raise
        raise InvalidImage(f"image is corrupt: {exc}") from None
    return DecodedImage(pixels, content_type)
