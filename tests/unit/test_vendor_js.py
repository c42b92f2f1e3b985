"""The vendored JavaScript is what scripts/vendor_js.py pins: each committed file's sha256 against its pin."""

from __future__ import annotations

import hashlib

import pytest

from scripts.vendor_js import PACKAGES, Package, mismatches


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: f"{p.name}@{p.version}")
def test_committed_files_match_their_pinned_sha256(package: Package) -> None:
    for inner, pinned in package.files.items():
        assert hashlib.sha256(package.target(inner).read_bytes()).hexdigest() == pinned, inner


def test_a_changed_file_is_reported(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("scripts.vendor_js.VENDOR", tmp_path)
    (package,) = PACKAGES
    for inner in package.files:
        package.target(inner).parent.mkdir(parents=True, exist_ok=True)
        package.target(inner).write_bytes(b"not the pinned file")
    assert len(mismatches()) == len(package.files)
