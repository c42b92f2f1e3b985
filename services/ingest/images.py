"""The image of a monitored prediction: bytes are checked, decoded and stored content-addressed; an
object key is taken as a reference to an image the producer's project uploaded already (another
project's image is refused exactly as a missing one)."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from uuid import UUID

from schemas.events import ImageRef
from schemas.features import RgbImage
from schemas.object_keys import CONTENT_TYPES, IMAGE_CONTENT_TYPES, parse_key
from services.common.db.repositories import objects
from services.common.db.repositories.base import Db
from services.common.domain.images import ImageTooLarge, InvalidImage, decode_image
from services.common.storage.images import store_image
from services.common.storage.object_store import ObjectStore

from .intake import Refused

_IMAGE_TYPE_OF_EXTENSION = {CONTENT_TYPES[t]: t for t in IMAGE_CONTENT_TYPES}


@dataclass(frozen=True)
class ResolvedImage:
    ref: ImageRef
    pixels: RgbImage | None  # None for an object key: ingest does not have the image


def decode_base64(text: str, max_bytes: int) -> bytes:
    # base64 is 4/3 of the bytes: refuse an oversized image before decoding it.
    if len(text) * 3 // 4 > max_bytes + 2:
        raise Refused(413, "image_base64", f"image is larger than {max_bytes} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise Refused(422, "image_base64", f"is not base64: {exc}") from None


async def owned_keys(db: Db, project_id: UUID, keys: Iterable[str | None]) -> set[str]:
    """Those of the image keys (None: an item without one) that are the project's objects."""
    named = [key for key in keys if key is not None]
    return await objects.owned(db, project_id, named) if named else set()


def reference(object_key: str, width: int, height: int, owned: Collection[str]) -> ImageRef:
    """The reference of an image stored under `object_key` (a content-addressed image key) when it is one
    of the project's `owned` objects, with the size the producer stated (positive: the request's own model
    checked it)."""
    if object_key not in owned:
        raise Refused(
            422,
            "image_object_key",
            f"no uploaded image under {object_key!r}: upload it with POST /v1/uploads?kind=images",
        )
    parsed = parse_key(object_key)
    content_type = _IMAGE_TYPE_OF_EXTENSION.get(parsed.extension or "")
    if content_type is None:
        raise Refused(422, "image_object_key", "must end in .jpg, .png or .webp, naming the image's format")
    # Built from the parsed key itself, so it names these bytes by construction: no second check.
    return ImageRef.model_construct(
        object_key=object_key, sha256=parsed.sha256, width=width, height=height, content_type=content_type
    )


async def store(
    store: ObjectStore, data: bytes, max_bytes: int, max_pixels: int, field: str
) -> ResolvedImage:
    """Decode (off the event loop), then store the bytes under their sha256."""
    try:
        decoded = await asyncio.to_thread(decode_image, data, max_bytes, max_pixels)
    except ImageTooLarge as exc:
        raise Refused(413, field, str(exc)) from None
    except InvalidImage as exc:
        raise Refused(415, field, str(exc)) from None
    return ResolvedImage(await store_image(store, data, decoded), decoded.pixels)
