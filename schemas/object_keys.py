"""Object keys of the store: content-addressed, and the only shape of key the store accepts.

They are part of the contract: events and producers name images and model files by these keys.

A key is `<kind>/<sha256[:2]>/<sha256>[.<ext>]`. Keys come from `object_key` (bytes → key) and are
checked by `parse_key` wherever one arrives from outside (an event, an API body, a database row), so no
path of the user's choosing (`../`, absolute names, other prefixes) ever reaches the bucket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class ObjectKind(StrEnum):
    IMAGES = "images"
    MODELS = "models"
    ARTIFACTS = "artifacts"
    REFERENCES = "references"
    LOGS = "logs"


# The content types the store accepts, with the extension their keys carry (None: no extension).
# Anything else is refused: a presigned URL serves the stored content type back to browsers.
CONTENT_TYPES: dict[str, str | None] = {
    "application/octet-stream": None,
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "application/onnx": "onnx",
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/gzip": "gz",
    "application/x-tar": "tar",
    "application/zip": "zip",
    "text/plain": "txt",
    "text/csv": "csv",
}
EXTENSIONS = frozenset(ext for ext in CONTENT_TYPES.values() if ext)
MAX_KEY_LENGTH = 128

_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ObjectKey:
    kind: ObjectKind
    sha256: str
    extension: str | None = None

    def __str__(self) -> str:
        suffix = f".{self.extension}" if self.extension else ""
        return f"{self.kind.value}/{self.sha256[:2]}/{self.sha256}{suffix}"


def normalize_content_type(content_type: str) -> str:
    """`Image/JPEG; charset=x` → `image/jpeg`; ValueError when the type is not in CONTENT_TYPES."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in CONTENT_TYPES:
        raise ValueError(
            f"content type {content_type!r} is not accepted by the object store; "
            f"accepted: {', '.join(sorted(CONTENT_TYPES))}"
        )
    return media_type


def object_key(kind: ObjectKind, sha256: str, content_type: str) -> ObjectKey:
    if not _DIGEST.fullmatch(sha256):
        raise ValueError(f"sha256 must be 64 lowercase hex characters, got {sha256!r}")
    return ObjectKey(ObjectKind(kind), sha256, CONTENT_TYPES[normalize_content_type(content_type)])


def parse_key(key: str) -> ObjectKey:
    """The parts of a content-addressed key; ValueError naming what is wrong with anything else."""
    if not isinstance(key, str):
        raise ValueError(f"object key must be a string, got {type(key).__name__}")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"object key is {len(key)} characters long; at most {MAX_KEY_LENGTH} are allowed")
    parts = key.split("/")
    if len(parts) != 3:
        raise ValueError(
            f"object key {key!r} must have the form <kind>/<sha256[:2]>/<sha256>[.<ext>], "
            f"not {len(parts)} '/'-separated part(s)"
        )
    kind_name, prefix, name = parts
    try:
        kind = ObjectKind(kind_name)
    except ValueError:
        known = ", ".join(k.value for k in ObjectKind)
        raise ValueError(f"object key {key!r} has unknown kind {kind_name!r}; known: {known}") from None
    digest, dot, extension = name.partition(".")
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"object key {key!r} does not name a sha256 digest (64 lowercase hex characters)")
    if prefix != digest[:2]:
        raise ValueError(f"object key {key!r} has prefix folder {prefix!r}; the digest says {digest[:2]!r}")
    if dot and extension not in EXTENSIONS:
        raise ValueError(
            f"object key {key!r} has extension {extension!r}; allowed: {', '.join(sorted(EXTENSIONS))}"
        )
    return ObjectKey(kind, digest, extension or None)


def validate_key(key: str) -> str:
    """The key itself when it is content-addressed; ValueError otherwise."""
    parse_key(key)
    return key


IMAGE_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp")


def validate_image_key(key: str) -> str:
    """The key itself when it names a stored image; ValueError otherwise."""
    parsed = parse_key(key)
    if parsed.kind is not ObjectKind.IMAGES:
        raise ValueError(f"object key {key!r} does not name an image (it is under {parsed.kind.value}/)")
    return key
