"""The object store: images and model files in one S3 bucket (MinIO in production, SeaweedFS locally).

Every object is content-addressed (see `keys`): storing the same bytes twice yields the same key and
uploads once. Every method taking a key checks it with `parse_key` first, so callers can pass keys that
came from outside without building paths from them.

The minio client is synchronous (and thread-safe); async services call these methods through
`asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import urllib.parse
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from minio import Minio
from minio.error import S3Error

from schemas.object_keys import ObjectKind, normalize_content_type, object_key, validate_key
from services.common.settings import Settings

logger = logging.getLogger(__name__)

# What S3 servers answer for a missing object (HEAD requests carry no body, so the code varies).
_MISSING = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})


def is_missing(error: BaseException) -> bool:
    """True when the store answered that the object does not exist (not when it did not answer)."""
    return isinstance(error, S3Error) and error.code in _MISSING


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size: int
    content_type: str


def minio_endpoint(url: str) -> tuple[str, bool]:
    """`https://host:port` → ("host:port", secure); ValueError for what minio cannot address."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"S3 endpoint {url!r} must be an http:// or https:// URL with a host")
    if "@" in parsed.netloc:
        raise ValueError(f"S3 endpoint {url!r} must not carry credentials; set S3_ACCESS_KEY/S3_SECRET_KEY")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise ValueError(f"S3 endpoint {url!r} must not have a path or query; the bucket is S3_BUCKET")
    return parsed.netloc, parsed.scheme == "https"


class ObjectStore:
    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        endpoint, secure = minio_endpoint(settings.s3_endpoint)
        client = Minio(
            endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=secure,
            # Known region: no GetBucketLocation round trip before requests and presigning.
            region=settings.s3_region,
        )
        return cls(client, settings.s3_bucket)

    def ensure_bucket(self) -> None:
        if self.client.bucket_exists(self.bucket):
            return
        try:
            self.client.make_bucket(self.bucket)
        except S3Error as exc:  # created by another service meanwhile
            if exc.code != "BucketAlreadyOwnedByYou":
                raise

    def put_bytes(
        self, kind: ObjectKind, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        return self._put(kind, io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest(), content_type)

    def put_file(
        self, kind: ObjectKind, path: Path, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Store a file (a model, a reference) by its content, streaming it rather than reading it whole."""
        with open(path, "rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
            file.seek(0)
            # Hashed and uploaded through the same open file, so its size is the hashed one.
            return self._put(kind, file, os.fstat(file.fileno()).st_size, digest, content_type)

    def _put(
        self, kind: ObjectKind, data: BinaryIO, size: int, digest: str, content_type: str
    ) -> StoredObject:
        media_type = normalize_content_type(content_type)
        stored = StoredObject(str(object_key(kind, digest, media_type)), digest, size, media_type)
        # Same key, same bytes: an existing object is already what we would upload. Two writers racing
        # past this check both upload identical bytes, which is harmless.
        if not self.exists(stored.key):
            self.client.put_object(self.bucket, stored.key, data, size, content_type=media_type)
            logger.debug("stored object", extra={"key": stored.key, "size": size})
        return stored

    def get_bytes(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, validate_key(key))
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, validate_key(key))
        except S3Error as exc:
            if is_missing(exc):
                return False
            raise
        return True

    def presigned_get_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        """A URL that lets anyone holding it GET the object until `expires` (at most 7 days) has passed."""
        return self.client.presigned_get_object(self.bucket, validate_key(key), expires=expires)

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing one is not an error (S3 semantics)."""
        self.client.remove_object(self.bucket, validate_key(key))
