"""The object store against a real S3 server (SeaweedFS locally, or S3_ENDPOINT): what it stores, and
that the server refuses whoever does not hold the platform's secret."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from minio import Minio
from minio.error import S3Error

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


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def _client(settings: Settings, access_key: str, secret_key: str) -> Minio:
    endpoint, secure = minio_endpoint(settings.s3_endpoint)
    return Minio(
        endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=settings.s3_region
    )


@pytest.mark.parametrize(
    ("access_key", "secret_key"),
    [("cvloop", "not-the-secret"), ("stranger", "cvloop-secret")],
    ids=["wrong secret", "unknown key"],
)
def test_requests_signed_without_the_secret_are_refused(
    store: ObjectStore, s3_settings: Settings, access_key: str, secret_key: str
) -> None:
    stored = store.put_bytes(ObjectKind.ARTIFACTS, os.urandom(64), "application/json")
    intruder = _client(s3_settings, access_key, secret_key)
    for attempt in (
        lambda: intruder.get_object(store.bucket, stored.key),
        lambda: list(intruder.list_objects(store.bucket)),
        lambda: intruder.put_object(store.bucket, "artifacts/intruder", io.BytesIO(b"x"), 1),
    ):
        with pytest.raises(S3Error) as refused:
            attempt()
        assert refused.value.code in ("AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId")
    assert list(store.client.list_objects(store.bucket, prefix="artifacts/intruder")) == []


def test_unsigned_requests_are_refused(store: ObjectStore, s3_settings: Settings) -> None:
    data = os.urandom(128)
    stored = store.put_bytes(ObjectKind.IMAGES, data, "image/png")
    endpoint = s3_settings.s3_endpoint.rstrip("/")
    assert _status(f"{endpoint}/") == 403  # the bucket list
    assert _status(f"{endpoint}/{store.bucket}") == 403  # the object listing
    assert _status(f"{endpoint}/{store.bucket}/{stored.key}") == 403
    assert store.get_bytes(stored.key) == data  # the platform's own signature still reads it


def test_tampered_or_expired_presigned_urls_are_refused(store: ObjectStore) -> None:
    data = os.urandom(256)
    stored = store.put_bytes(ObjectKind.IMAGES, data, "image/png")
    other = store.put_bytes(ObjectKind.IMAGES, os.urandom(256), "image/png")
    url = store.presigned_get_url(stored.key, expires=timedelta(minutes=5))
    assert _status(url) == 200

    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    forged = "0" if signature[0] != "0" else "1"
    assert _status(_with_query(url, **{"X-Amz-Signature": forged + signature[1:]})) == 403
    assert _status(_with_query(url, **{"X-Amz-Expires": "604800"})) == 403  # a longer life, unsigned
    assert _status(url.replace(stored.key, other.key)) == 403  # another object with this signature

    # Signed two hours ago for one hour: expired an hour ago.
    expired = store.client.presigned_get_object(
        store.bucket,
        stored.key,
        expires=timedelta(hours=1),
        request_date=datetime.now(UTC) - timedelta(hours=2),
    )
    assert _status(expired) == 403


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
