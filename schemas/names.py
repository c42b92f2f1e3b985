"""Names that become paths on a machine running jobs: model-version files and experiment artifacts (staged
into a job's folder under their name), dataset aliases (a folder each). They are checked when they are
registered, so a name that would climb out of its folder is refused at the door, not when a job runs."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from .limits import Line

MAX_FILE_NAME = 256  # model_files.name and experiment_artifacts.name
ALIAS = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9._-]{1,64}")


def plain_relative_name(name: str) -> str:
    """The name itself when it is a relative path that stays in its folder: '/'-separated parts, none
    empty, '.' or '..'; no backslash, no control character (NUL included). ValueError otherwise."""
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise ValueError("must not contain control characters (NUL, newline, ...)")
    if "\\" in name:
        raise ValueError("must not contain '\\'; folders are separated by '/'")
    if name.startswith("/"):
        raise ValueError("must be a relative name, not an absolute path")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError("must not have empty, '.' or '..' parts: it stays inside its folder")
    return name


def folder_name(alias: str) -> str:
    """The alias itself when it is usable as one folder's name (letters, digits, '.', '_', '-'; not '.' or
    '..'); ValueError otherwise."""
    if not ALIAS.fullmatch(alias):
        raise ValueError("must be 1 to 64 letters, digits, '.', '_' or '-', and not '.' or '..'")
    return alias


FileName = Annotated[
    Line,
    Field(min_length=1, max_length=MAX_FILE_NAME),
    AfterValidator(plain_relative_name),
    Field(description="A relative file name ('/' separates folders); no '..', no absolute path."),
]
FolderName = Annotated[
    Line,
    Field(min_length=1, max_length=64),
    AfterValidator(folder_name),
    Field(description="A name usable as a folder: letters, digits, '.', '_', '-'."),
]
