"""Fetching a file from a presigned object-store URL: streamed to a temporary file beside the target,
checked against its sha256, then moved into place (a failed download leaves nothing half-written)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import httpx

from .errors import CvloopError

CHUNK = 1024 * 1024


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, refusing a name that would land outside the folder."""
    target = (folder / name).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise CvloopError(f"file name {name!r} points outside {folder}")
    return target


def download_file(url: str, target: Path, sha256: str, timeout: float = 60.0) -> Path:
    """The presigned URL carries its own authorisation: no API key goes with it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, httpx.stream("GET", url, timeout=timeout) as response:
            if response.status_code != 200:
                raise CvloopError(f"download of {target.name} answered {response.status_code}")
            for chunk in response.iter_bytes(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise CvloopError(f"{target.name}: sha256 {digest.hexdigest()} is not the registered {sha256}")
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target
