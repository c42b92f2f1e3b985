"""Content-addressed object keys: how they are made, and that nothing else passes as one."""

from __future__ import annotations

import hashlib

import pytest

from schemas.object_keys import (
    MAX_KEY_LENGTH,
    ObjectKey,
    ObjectKind,
    normalize_content_type,
    object_key,
    parse_key,
    validate_key,
)

DIGEST = hashlib.sha256(b"cvloop").hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()


def test_key_is_kind_prefix_digest_and_extension() -> None:
    key = object_key(ObjectKind.IMAGES, DIGEST, "image/jpeg")
    assert str(key) == f"images/{DIGEST[:2]}/{DIGEST}.jpg"


def test_octet_stream_has_no_extension() -> None:
    assert (
        str(object_key(ObjectKind.MODELS, DIGEST, "application/octet-stream"))
        == f"models/{DIGEST[:2]}/{DIGEST}"
    )


def test_content_type_parameters_and_case_are_ignored() -> None:
    assert normalize_content_type(" Application/JSON; charset=utf-8") == "application/json"
    assert str(object_key(ObjectKind.LOGS, DIGEST, "text/plain; charset=utf-8")).endswith(".txt")


@pytest.mark.parametrize("content_type", ["text/html", "image/svg+xml", "application/javascript", ""])
def test_unlisted_content_types_are_refused(content_type: str) -> None:
    with pytest.raises(ValueError, match="not accepted"):
        object_key(ObjectKind.IMAGES, DIGEST, content_type)


@pytest.mark.parametrize("digest", [DIGEST.upper(), DIGEST[:-1], "../" + DIGEST[3:], "x" * 64])
def test_object_key_needs_a_real_digest(digest: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        object_key(ObjectKind.IMAGES, digest, "image/png")


@pytest.mark.parametrize("kind", list(ObjectKind))
@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", "application/onnx"])
def test_parse_key_round_trips(kind: ObjectKind, content_type: str) -> None:
    key = object_key(kind, DIGEST, content_type)
    assert parse_key(str(key)) == key
    assert validate_key(str(key)) == str(key)


def test_parse_key_gives_the_parts() -> None:
    assert parse_key(f"references/{DIGEST[:2]}/{DIGEST}.json") == ObjectKey(
        ObjectKind.REFERENCES, DIGEST, "json"
    )


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (f"../{DIGEST[:2]}/{DIGEST}", "unknown kind '..'"),
        (f"images/../{DIGEST}", "prefix folder '..'"),
        (f"images/{DIGEST[:2]}/../../etc/passwd", "form <kind>"),
        (f"images/{DIGEST[:2]}/{DIGEST}/../../x", "form <kind>"),
        (f"/images/{DIGEST[:2]}/{DIGEST}", "form <kind>"),
        (f"images//{DIGEST}", "prefix folder ''"),
        ("images/ab/..", "sha256 digest"),
        (f"images/{DIGEST[:2]}/{DIGEST}.jpg/..", "form <kind>"),
        (f"images\\{DIGEST[:2]}\\{DIGEST}", "form <kind>"),
        ("images/ab/passwd", "sha256 digest"),
        ("", "form <kind>"),
        (f"Images/{DIGEST[:2]}/{DIGEST}", "unknown kind 'Images'"),
        (f"secrets/{DIGEST[:2]}/{DIGEST}", "unknown kind 'secrets'"),
        (f"images/{OTHER[:2]}/{DIGEST}", "the digest says"),
        (f"images/{DIGEST[:2]}/{DIGEST.upper()}", "sha256 digest"),
        (f"images/{DIGEST[:2]}/{DIGEST}.html", "extension 'html'"),
        (f"images/{DIGEST[:2]}/{DIGEST}.", "extension ''"),
        (f"images/{DIGEST[:2]}/{DIGEST}.tar.gz", "extension 'tar.gz'"),
        (f"images/{DIGEST[:2]}/{DIGEST}\x00.jpg", "sha256 digest"),
        (f"images/{DIGEST[:2]}/{DIGEST}\n", "sha256 digest"),
        ("images/" + "a" * MAX_KEY_LENGTH, "characters long"),
    ],
)
def test_anything_else_is_refused_with_the_reason(key: str, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_key(key)
    assert problem in str(refused.value)
    with pytest.raises(ValueError):
        validate_key(key)


def test_non_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_key(b"images/ab/cd")  # type: ignore[arg-type]
