"""What Postgres, Kafka and the JSON codec would refuse, refused at the door instead: the constrained types
every boundary (api and ingest bodies, `predictions.raw`, serving's query parameters) builds on.

Postgres refuses NUL in text and integers past its column's width; orjson refuses integers past 64 bits;
a NaN or an infinity is stored as null and poisons every reader after. Each type names what it refuses,
so a client gets a 422 (or a dead letter) naming the field rather than a 500 or a wedged consumer.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, Field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1
MAX_JSON_BYTES = 64 * 1024  # one JSON object field (metadata, parameters) as stored, in bytes
MAX_JSON_DEPTH = 32

# C0 controls and DEL; tab, line feed and carriage return stay allowed in multi-line text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f]")
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"  # the pattern the OpenAPI documents show for one-line text
_NO_CONTROL_BUT_NEWLINES = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def _control_free(pattern: re.Pattern[str]) -> Any:
    def check(value: str) -> str:
        found = pattern.search(value)
        if found is not None:
            raise ValueError(f"holds the control character {found.group()!r} at position {found.start()}")
        return value

    return AfterValidator(check)


Line = Annotated[str, _control_free(_CONTROL_OR_NEWLINE), Field(json_schema_extra={"pattern": _NO_CONTROL})]
"""One line of text: no control characters at all (names, tags, labels, versions)."""

Text = Annotated[
    str,
    _control_free(_CONTROL),
    Field(json_schema_extra={"pattern": _NO_CONTROL_BUT_NEWLINES}),
]
"""Free text: tab and newlines allowed, no other control character (descriptions, commands)."""

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
"""What a Postgres bigint (an offset, a count) holds."""

Int32 = Annotated[int, Field(ge=-(2**31), le=INT32_MAX)]
"""What a Postgres integer (a width, a threshold count) holds."""

Finite = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is a number: no NaN, no infinity (JSON has neither; Postgres would store null)."""


def _check_json(value: Any, path: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{path or 'the object'} nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path} holds the NUL character, which no JSON column stores")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{path} is outside the 64-bit integer range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is not a finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise ValueError(f"{path or 'a key'} holds a key with the NUL character")
            _check_json(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", depth + 1)


def json_object(max_bytes: int) -> Any:
    """A free JSON object of at most `max_bytes`: what a jsonb column and one Kafka message hold."""

    def storable(value: dict[str, Any]) -> dict[str, Any]:
        _check_json(value, "", 0)
        size = len(orjson.dumps(value))
        if size > max_bytes:
            raise ValueError(f"is {size} bytes as JSON; at most {max_bytes} are accepted")
        return value

    return Annotated[
        dict[str, Any],
        AfterValidator(storable),
        Field(description=f"A JSON object of at most {max_bytes} bytes; no NUL, no integer past 64 bits."),
    ]


JsonObject = json_object(MAX_JSON_BYTES)
"""What a client sends as metadata or parameters."""
