"""Uploaded objects the registry points at: checked to be the caller's project's and to exist, described by
their key and size. Another project's object is answered exactly as a missing one, so a known sha256 tells
nothing about other tenants."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

from minio.error import S3Error

from schemas.object_keys import CONTENT_TYPES, ObjectKind, parse_key
from services.common.db.repositories import objects
from services.common.http import ApiError
from services.common.storage import ObjectStore, StoredObject

from .context import Context

_MISSING = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})


def _size(store: ObjectStore, key: str) -> int | None:
    try:
        return store.client.stat_object(store.bucket, key).size
    except S3Error as exc:
        if exc.code in _MISSING:
            return None
        raise


async def uploaded(ctx: Context, project_id: UUID, key: str, field: str) -> tuple[str, int]:
    """The sha256 and size of an object of the project; 422 naming `field` when the project has none there
    (nothing uploaded, or only by another project)."""
    size = None
    if await objects.owned(ctx.pool, project_id, [key]):
        size = await asyncio.to_thread(_size, ctx.store, key)
    if size is None:
        raise ApiError(422, field, f"no uploaded object under {key!r}: upload it with POST /v1/uploads")
    return parse_key(key).sha256, size


async def read_uploaded(ctx: Context, project_id: UUID, key: str, field: str) -> bytes:
    await uploaded(ctx, project_id, key, field)
    return await asyncio.to_thread(ctx.store.get_bytes, key)


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
