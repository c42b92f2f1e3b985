"""The object store against a real S3 server (moto locally, or S3_ENDPOINT)."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from services.common.settings import Settings
from services.common.storage import ObjectKind, ObjectStore, parse_key
from services.common.storage.object_store import minio_endpoint

TRAVERSALS = ["../../etc/passwd", "images/ab/../../../secret", "/images/ab/cd", "images/ab/cd", "models"]


@pytest.fixture(scope="module")
def store(s3_settings: Settings) -> ObjectStore:
    store = ObjectStore.from_settings(s3_settings)
    store.ensure_bucket()
    return store


def test_put_get_round_trip(store: ObjectStore) -> None:
    data = b"\xff\xd8\xff" + os.urandom(1000)
    stored = store.put_bytes(ObjectKind.IMAGES, data, "image/jpeg")
    digest = hashlib.sha256(data).hexdigest()
    assert stored.key == f"images/{digest[:2]}/{digest}.jpg"
    assert (stored.sha256, stored.size, stored.content_type) == (digest, len(data), "image/jpeg")
    assert store.get_bytes(stored.key) == data
    assert store.client.stat_object(store.bucket, stored.key).content_type == "image/jpeg"


def test_same_bytes_same_key_uploaded_once(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(256)
    first = store.put_bytes(ObjectKind.ARTIFACTS, data)

    def no_upload(*args: object, **kwargs: object) -> None:
        raise AssertionError("an object already stored was uploaded again")

    monkeypatch.setattr(store.client, "put_object", no_upload)
    assert store.put_bytes(ObjectKind.ARTIFACTS, data) == first


def test_different_bytes_or_kind_give_different_keys(store: ObjectStore) -> None:
    data = os.urandom(64)
    keys = {
        store.put_bytes(ObjectKind.LOGS, data, "text/plain").key,
        store.put_bytes(ObjectKind.LOGS, data + b"!", "text/plain").key,
        store.put_bytes(ObjectKind.REFERENCES, data, "text/plain").key,
    }
    assert len(keys) == 3


def test_exists_and_delete(store: ObjectStore) -> None:
    stored = store.put_bytes(ObjectKind.ARTIFACTS, os.urandom(32), "application/json")
    assert store.exists(stored.key)
    store.delete(stored.key)
    assert not store.exists(stored.key)
    store.delete(stored.key)  # deleting twice is fine


def test_put_file_is_content_addressed(store: ObjectStore, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(os.urandom(3 * 1024 * 1024))
    stored = store.put_file(ObjectKind.MODELS, model, "application/onnx")
    assert stored.sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert stored.size == model.stat().st_size
    assert parse_key(stored.key).extension == "onnx"
    assert store.get_bytes(stored.key) == model.read_bytes()
    assert store.put_bytes(ObjectKind.MODELS, model.read_bytes(), "application/onnx") == stored


def test_presigned_get_url_serves_the_bytes(store: ObjectStore) -> None:
    data = os.urandom(512)
    stored = store.put_bytes(ObjectKind.IMAGES, data, "image/png")
    url = store.presigned_get_url(stored.key, expires=timedelta(minutes=5))
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == data
        assert response.headers["Content-Type"] == "image/png"


@pytest.mark.parametrize("key", TRAVERSALS)
def test_bad_keys_are_refused_before_any_request(store: ObjectStore, key: str) -> None:
    for method in (store.get_bytes, store.exists, store.presigned_get_url, store.delete):
        with pytest.raises(ValueError, match="object key"):
            method(key)


def test_unaccepted_content_type_is_refused(store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="not accepted"):
        store.put_bytes(ObjectKind.IMAGES, b"<script>", "text/html")


def test_missing_object_does_not_exist(store: ObjectStore) -> None:
    digest = hashlib.sha256(os.urandom(16)).hexdigest()
    assert not store.exists(f"images/{digest[:2]}/{digest}.jpg")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9000", ("127.0.0.1:9000", False)),
        ("https://minio.example.internal/", ("minio.example.internal", True)),
    ],
)
def test_minio_endpoint(url: str, expected: tuple[str, bool]) -> None:
    assert minio_endpoint(url) == expected


@pytest.mark.parametrize(
    "url", ["127.0.0.1:9000", "ftp://host", "http://host:9000/bucket", "http://user:pw@host", "http://"]
)
def test_minio_endpoint_refuses_what_minio_cannot_address(url: str) -> None:
    with pytest.raises(ValueError, match="S3 endpoint"):
        minio_endpoint(url)
