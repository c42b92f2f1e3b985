"""Files going up: a source (path, bytes or open file) as a seekable file object, with the bytes read
reported to a progress callback as httpx streams it."""

from __future__ import annotations

import io
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict

Progress = Callable[[int], None]  # called with the bytes sent since the last call
FileSource = str | Path | bytes | BinaryIO


class UploadedFile(BaseModel):
    """What POST /v1/uploads answers: the stored object, content-addressed."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    object_key: str
    sha256: str
    size_bytes: int
    content_type: str


class ProgressReader(io.RawIOBase):
    """A readable, seekable view of `raw` that reports each new byte read once.

    httpx seeks to the end and back to learn the length, and rewinds before a retry: only bytes past the
    furthest point already reported count, so a bar never runs past the file's size. Closing it leaves
    `raw` open: whoever opened it closes it."""

    def __init__(self, raw: BinaryIO, progress: Progress | None) -> None:
        super().__init__()
        self._raw = raw
        self._progress = progress
        self._reported = 0  # httpx sends a file from its start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        position = self._raw.tell()
        if self._progress is not None and position > self._reported:
            self._progress(position - self._reported)
            self._reported = position
        return chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


def open_source(source: FileSource) -> tuple[BinaryIO, str, bool]:
    """(file object, file name, whether the caller must close it)."""
    if isinstance(source, bytes):
        return io.BytesIO(source), "upload", True
    if isinstance(source, str | Path):
        path = Path(source)
        return path.open("rb"), path.name, True
    return source, Path(getattr(source, "name", "upload")).name, False


def content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
