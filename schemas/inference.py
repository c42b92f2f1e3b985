"""A KServe v2 inference request (the open inference protocol, JSON and the binary tensor extension) as
serving's `/v2/models/{deployment}/infer` accepts it: checked before it reaches Triton, so a malformed one
answers 400 with the field at fault instead of Triton's 500 (or a 200 to an empty body).

With the binary extension the body is the JSON header (its length in `Inference-Header-Content-Length`)
followed by each binary tensor's bytes, in the order of the inputs that declare `binary_data_size`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from .limits import INT64_MAX, Line

BYTES_PER_ELEMENT: dict[str, int | None] = {
    "BOOL": 1,
    "UINT8": 1,
    "UINT16": 2,
    "UINT32": 4,
    "UINT64": 8,
    "INT8": 1,
    "INT16": 2,
    "INT32": 4,
    "INT64": 8,
    "FP16": 2,
    "FP32": 4,
    "FP64": 8,
    "BF16": 2,
    "BYTES": None,  # each element its own length-prefixed string
}
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
    "BF16", "BYTES",
]  # fmt: skip
TensorName = Annotated[Line, Field(min_length=1, max_length=256)]
# What each element of `data` is, by the datatype's first two letters (BOOL, UINT*, INT*, FP*/BF16, BYTES).
_ELEMENT_KINDS: dict[str, type | tuple[type, ...]] = {
    "BO": bool,
    "UI": int,
    "IN": int,
    "FP": (int, float),
    "BF": (int, float),
    "BY": str,
}
# Strict: Triton parses these as unsigned integers and answers 500 to a JSON number like 274.0.
Count = Annotated[int, Field(ge=0, le=INT64_MAX, strict=True)]
MAX_DIMENSIONS = 16


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True)  # unknown fields pass: the protocol lets clients extend it


def _not_null(value: Any) -> Any:
    """Omittable fields may be left out but not sent as null, which Triton fails on (with a 500)."""
    if value is None:
        raise ValueError("must not be null: leave it out instead")
    return value


# An optional field: absent is None, an explicit null is refused (and the documents show no null).
Omittable = SkipJsonSchema[None]


class TensorParameters(_Part):
    binary_data_size: Count | Omittable = Field(
        None, description="Binary extension: the tensor's bytes follow the JSON header."
    )
    binary_data: bool | Omittable = None

    _present = field_validator("binary_data_size", "binary_data", mode="before")(_not_null)


def _flattened(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    return [leaf for item in data for leaf in _flattened(item)]


class InferInput(_Part):
    name: TensorName
    shape: list[Count] = Field(max_length=MAX_DIMENSIONS)
    datatype: Datatype
    parameters: TensorParameters = Field(default_factory=TensorParameters)
    data: list[Any] | Omittable = Field(None, description="The tensor's elements, row-major, nested or flat.")

    _present = field_validator("data", mode="before")(_not_null)

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @model_validator(mode="after")
    def _data_fits_the_shape(self) -> Self:
        binary = self.parameters.binary_data_size
        if (self.data is None) == (binary is None):
            raise ValueError("give the tensor's `data`, or `parameters.binary_data_size` for binary data")
        size = BYTES_PER_ELEMENT[self.datatype]
        if binary is not None:
            if size is not None and binary != self.elements * size:
                raise ValueError(
                    f"binary_data_size is {binary} bytes but shape {self.shape} of {self.datatype} "
                    f"holds {self.elements * size}"
                )
            return self
        elements = _flattened(self.data)
        if len(elements) != self.elements:
            raise ValueError(
                f"data holds {len(elements)} elements but shape {self.shape} holds {self.elements}"
            )
        kind = _ELEMENT_KINDS[self.datatype[:2]]
        for i, element in enumerate(elements):
            if not isinstance(element, kind) or (kind is not bool and isinstance(element, bool)):
                raise ValueError(f"data element {i} is {element!r}, not a {self.datatype} value")
        return self


class RequestedOutput(_Part):
    name: TensorName
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferRequest(_Part):
    id: Annotated[Line, Field(max_length=256)] | Omittable = None
    inputs: list[InferInput] = Field(min_length=1, max_length=256)
    outputs: Annotated[list[RequestedOutput], Field(max_length=256)] | Omittable = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    _present = field_validator("id", "outputs", mode="before")(_not_null)

    @model_validator(mode="after")
    def _distinct_inputs(self) -> Self:
        names = [i.name for i in self.inputs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"inputs are named twice: {', '.join(repeated)}")
        return self

    @property
    def binary_bytes(self) -> int:
        """The bytes the binary tensors take after the JSON header."""
        return sum(i.parameters.binary_data_size or 0 for i in self.inputs)


class InferRefused(BaseModel):
    """A 400 of `/v2 infer`: KServe's `error` always; serving's own refusals add the common error body's
    `detail` and `errors` (Triton's carry `error` only)."""

    model_config = ConfigDict(extra="allow")

    error: str
    detail: str | Omittable = None
    errors: list[dict[str, str]] | Omittable = None


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """The request in `body`; ValueError (or pydantic's ValidationError) saying what is wrong."""
    if not body:
        raise ValueError("the body is empty: send a KServe v2 inference request")
    if header_length is None:
        header, binary = body, 0
    else:
        if not header_length.isdigit() or not 0 < int(header_length) <= len(body):
            raise ValueError(
                f"Inference-Header-Content-Length is {header_length!r}: it must be the JSON header's "
                f"length, at most the body's {len(body)} bytes"
            )
        header, binary = body[: int(header_length)], len(body) - int(header_length)
    request = InferRequest.model_validate_json(header)
    if request.binary_bytes != binary:
        raise ValueError(
            f"the binary tensors declare {request.binary_bytes} bytes but {binary} follow the JSON header"
        )
    return request
