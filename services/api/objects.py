"""Uploaded objects the registry points at: checked to exist, described by their key and size."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from minio.error import S3Error

from schemas.object_keys import CONTENT_TYPES, ObjectKind, parse_key
from services.common.http import ApiError
from services.common.storage import ObjectStore, StoredObject

_MISSING = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})


def _size(store: ObjectStore, key: str) -> int | None:
    try:
        return store.client.stat_object(store.bucket, key).size
    except S3Error as exc:
        if exc.code in _MISSING:
            return None
        raise


async def uploaded(store: ObjectStore, key: str, field: str) -> tuple[str, int]:
    """The sha256 and size of an uploaded object; 422 naming `field` when nothing was uploaded there."""
    size = await asyncio.to_thread(_size, store, key)
    if size is None:
        raise ApiError(422, field, f"no uploaded object under {key!r}: upload it with POST /v1/uploads")
    return parse_key(key).sha256, size


async def read_uploaded(store: ObjectStore, key: str, field: str) -> bytes:
    await uploaded(store, key, field)
    return await asyncio.to_thread(store.get_bytes, key)


def _store_file(store: ObjectStore, kind: ObjectKind, source: BinaryIO, content_type: str) -> StoredObject:
    # ObjectStore hashes and uploads from a path, streaming: copy the spooled upload to one first.
    with tempfile.NamedTemporaryFile(prefix="cvloop-upload-") as copy:
        source.seek(0)
        shutil.copyfileobj(source, copy)
        copy.flush()
        return store.put_file(kind, Path(copy.name), content_type)


async def store_file(
    store: ObjectStore, kind: ObjectKind, source: BinaryIO, content_type: str | None
) -> StoredObject:
    """Store an uploaded file under its content; a content type the store does not know is stored as
    application/octet-stream."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in CONTENT_TYPES:
        media_type = "application/octet-stream"
    return await asyncio.to_thread(_store_file, store, kind, source, media_type)
