"""Names that become paths (schemas/names.py): relative names that stay in their folder, and folder names."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from schemas.names import FileName, FolderName

FILE_NAME: TypeAdapter[str] = TypeAdapter(FileName)
FOLDER_NAME: TypeAdapter[str] = TypeAdapter(FolderName)


@pytest.mark.parametrize("name", ["model.onnx", "labels.json", "checkpoints/epoch-3.pt", "a.b/c..d", "..x"])
def test_plain_relative_names_are_kept(name: str) -> None:
    assert FILE_NAME.validate_python(name) == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("../../../../x", "'..' parts"),
        ("a/../../x", "'..' parts"),
        ("/etc/x", "absolute"),
        ("a\\..\\x", "'\\'"),
        ("C:\\x", "'\\'"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("a//b", "empty"),
        ("a/", "empty"),
        ("./a", "'.'"),
        ("", "at least 1"),
        ("x" * 257, "at most 256"),
    ],
)
def test_names_that_climb_or_are_absolute_are_refused(name: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("\\", "\\\\").replace(".", r"\.")):
        FILE_NAME.validate_python(name)


@pytest.mark.parametrize("alias", ["train", "test", "feedback-2", "v1.0_a"])
def test_folder_names(alias: str) -> None:
    assert FOLDER_NAME.validate_python(alias) == alias


@pytest.mark.parametrize("alias", ["..", ".", "a/b", "a b", "x" * 65, ""])
def test_aliases_that_are_not_one_folder_are_refused(alias: str) -> None:
    with pytest.raises(ValidationError):
        FOLDER_NAME.validate_python(alias)
