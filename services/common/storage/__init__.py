"""Object storage: content-addressed keys (pure) and the S3 store that holds the objects."""

from schemas.object_keys import ObjectKey, ObjectKind, parse_key, validate_key

from .object_store import ObjectStore, StoredObject, is_missing

__all__ = [
    "ObjectKey",
    "ObjectKind",
    "ObjectStore",
    "StoredObject",
    "is_missing",
    "parse_key",
    "validate_key",
]
