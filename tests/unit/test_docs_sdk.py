"""docs/sdk.md shows every public call of the SDK's client and of the objects it answers."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import cvloop.sdk
from cvloop.sdk.resource import Record

SDK_DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
CLASSES = [cvloop.sdk.Client] + [
    value for value in vars(cvloop.sdk).values() if inspect.isclass(value) and issubclass(value, Record)
]
# Helpers the client lends the objects it makes, not calls for users.
INTERNAL = {"api_page", "one"}


def _public_names(cls: type) -> list[str]:
    return [
        name
        for name, member in vars(cls).items()
        if not name.startswith("_")
        and name not in INTERNAL
        and (inspect.isfunction(member) or isinstance(member, property | staticmethod))
    ]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_public_call_is_in_the_sdk_page(cls: type) -> None:
    text = SDK_DOC.read_text()
    missing = [name for name in _public_names(cls) if not re.search(rf"\.{name}\b", text)]
    assert not missing, f"{cls.__name__}: {missing}"
