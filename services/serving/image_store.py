"""Storing request images, remembering which ones this process already stored: keys are content
addresses, so an image stored once needs neither a HEAD nor a PUT again (a camera re-sending a frame,
a client retrying)."""

from __future__ import annotations

from collections import OrderedDict

from schemas.events import ImageRef
from schemas.object_keys import ObjectKind, object_key
from services.common.domain.images import DecodedImage
from services.common.storage import ObjectStore
from services.common.storage.images import store_image

REMEMBERED = 4096


class ImageStore:
    def __init__(self, store: ObjectStore, remembered: int = REMEMBERED) -> None:
        self.objects = store
        self.remembered = remembered
        self._stored: OrderedDict[str, None] = OrderedDict()  # sha256, least recently used first

    async def store(self, data: bytes, digest: str, image: DecodedImage) -> ImageRef:
        """The image's reference; `digest` is the sha256 of `data` (the caller has it already)."""
        if digest in self._stored:
            self._stored.move_to_end(digest)
            return ImageRef(
                object_key=str(object_key(ObjectKind.IMAGES, digest, image.content_type)),
                sha256=digest,
                width=image.width,
                height=image.height,
                content_type=image.content_type,
            )
        reference = await store_image(self.objects, data, image)
        self._stored[reference.sha256] = None
        if len(self._stored) > self.remembered:
            self._stored.popitem(last=False)
        return reference
