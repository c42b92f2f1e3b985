"""What every SDK object shares: the client it came from and the server's answer it wraps.

Objects keep the answer as it came (`data`, the contract's JSON body) and name the fields users
reach for as properties; `refresh()` reads it again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self
from uuid import UUID

from pydantic import BaseModel

if TYPE_CHECKING:
    from .client import Client


class Record:
    """An object the server answered, with an id."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self.client = client
        self.data = data

    @property
    def id(self) -> UUID:
        return UUID(str(self.data["id"]))

    def __getitem__(self, field: str) -> Any:
        return self.data[field]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.id == self.id  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.id))

    def __repr__(self) -> str:
        name = self.data.get("name") or self.data.get("version")
        kind = type(self).__name__
        return f"{kind}({name!r}, id={self.id})" if name else f"{kind}({self.id})"


class Resource(Record):
    """A record with a route of its own, which can be read again."""

    path: ClassVar[str]  # with `{id}`

    @property
    def url(self) -> str:
        return self.path.format(id=self.id)

    def refresh(self) -> Self:
        self.data = self.client.api.get(self.url)
        return self


Ref = Record | UUID | str  # an SDK object or its id


def ref_id(ref: Ref) -> str:
    """The id of an object given as itself or as its id; a string must be a UUID."""
    if isinstance(ref, Record):
        return str(ref.id)
    return str(UUID(str(ref)))


def as_json(value: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """A body part given as a pydantic model (a Prediction, a ModelIO) or as plain JSON."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else dict(value)


def ids_by_alias(refs: Mapping[str, Ref] | None) -> dict[str, str]:
    return {alias: ref_id(ref) for alias, ref in (refs or {}).items()}
