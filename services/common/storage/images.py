"""Storing an image content-addressed and describing it for an event."""

from __future__ import annotations

import asyncio

from schemas.events import ImageRef
from schemas.object_keys import ObjectKind
from services.common.domain.images import DecodedImage

from .object_store import ObjectStore


async def store_image(store: ObjectStore, data: bytes, image: DecodedImage) -> ImageRef:
    """Put the image bytes under their sha256 (a no-op when already stored) and return their reference."""
    stored = await asyncio.to_thread(store.put_bytes, ObjectKind.IMAGES, data, image.content_type)
    return ImageRef(
        object_key=stored.key,
        sha256=stored.sha256,
        width=image.width,
        height=image.height,
        content_type=image.content_type,
    )
