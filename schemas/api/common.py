"""What every API body shares: strictness, names, and the list envelope."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.names import FolderName
from schemas.object_keys import validate_key

Name = Annotated[str, Field(min_length=1, max_length=128)]
Version = Annotated[str, Field(min_length=1, max_length=64)]
Alias = FolderName  # a dataset alias is a folder of the job workspace
Description = Annotated[str, Field(max_length=4096)]
ObjectKeyText = Annotated[str, AfterValidator(validate_key), Field(description="An uploaded object's key.")]
JsonObject = dict[str, Any]

T = TypeVar("T")


class Body(BaseModel):
    """A request body: unknown fields are refused, so a misspelt one is an error rather than ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(BaseModel):
    """An answer body: built from the server's records, leaving out what the contract does not show."""

    model_config = ConfigDict(extra="ignore", frozen=True, from_attributes=True)


class Page(Answer, Generic[T]):
    items: list[T]
    total: int = Field(ge=0, description="All matching items, not only this page's.")
