"""What every API body shares: strictness, names, and the list envelope."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.limits import JsonObject, Line, Text
from schemas.names import FolderName
from schemas.object_keys import validate_key

Name = Annotated[Line, Field(min_length=1, max_length=128)]
Version = Annotated[Line, Field(min_length=1, max_length=64)]
Alias = FolderName  # a dataset alias is a folder of the job workspace
Description = Annotated[Text, Field(max_length=4096)]
ObjectKeyText = Annotated[Line, AfterValidator(validate_key), Field(description="An uploaded object's key.")]

__all__ = [
    "Alias",
    "Answer",
    "Body",
    "Description",
    "ErrorBody",
    "JsonObject",
    "Name",
    "ObjectKeyText",
    "Page",
    "Problem",
    "Version",
]

T = TypeVar("T")


class Body(BaseModel):
    """A request body: unknown fields are refused, so a misspelt one is an error rather than ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(BaseModel):
    """An answer body: built from the server's records, leaving out what the contract does not show."""

    model_config = ConfigDict(extra="ignore", frozen=True, from_attributes=True)


class Problem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(
        description="The field at fault as a path (`body.champion.prediction.scores[1]`, `query.tags[0]`); "
        "empty for the request as a whole."
    )
    message: str


class ErrorBody(BaseModel):
    """Every error answer of cvloop's HTTP services (api, ingest, serving), whatever its status."""

    model_config = ConfigDict(extra="forbid")

    detail: str = Field(description="The problems on one line: `<field>: <message>; ...`.")
    errors: list[Problem] = Field(min_length=1)


class Page(Answer, Generic[T]):
    items: list[T]
    total: int = Field(ge=0, description="All matching items, not only this page's.")
