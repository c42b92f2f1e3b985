"""What Postgres, Kafka or the JSON codec would refuse is refused by the schemas, naming the field: the
constrained types of schemas/limits.py, and every request body built on them."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas import RawPrediction, describe
from schemas.api import common, deployments, experiments, jobs, predictions, projects, registry  # noqa: F401
from schemas.api.ingest import MonitorFields, MonitorPrediction
from schemas.limits import INT64_MAX, MAX_JSON_BYTES, Finite, Int64, JsonObject, Line, Text
from tests import samples


def _refused(adapter: TypeAdapter[Any], value: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python(value)
    return str(caught.value)


@pytest.mark.parametrize("value", ["a\x00b", "tab\there", "line\nfeed", "\x1b[31m", "del\x7f"])
def test_a_line_refuses_every_control_character(value: str) -> None:
    assert "control character" in _refused(TypeAdapter(Line), value)


def test_text_keeps_tabs_and_newlines_but_refuses_nul() -> None:
    assert TypeAdapter(Text).validate_python("two\nlines\tand a tab\r\n") == "two\nlines\tand a tab\r\n"
    assert "'\\x00'" in _refused(TypeAdapter(Text), "nul\x00")


def test_int64_and_finite_floats() -> None:
    assert TypeAdapter(Int64).validate_python(INT64_MAX) == INT64_MAX
    _refused(TypeAdapter(Int64), INT64_MAX + 1)
    for value in (math.nan, math.inf, -math.inf):
        _refused(TypeAdapter(Finite), value)
    with pytest.raises(ValidationError, match="finite"):
        TypeAdapter(Finite).validate_json("NaN")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('{"a": {"b": [1, 99999999999999999999]}}', "a.b[1] is outside the 64-bit integer range"),
        ('{"a": NaN}', "a is not a finite number"),
        ('{"a": Infinity}', "a is not a finite number"),
        ('{"a": "x\\u0000y"}', "a holds the NUL character"),
        ('{"x\\u0000": 1}', "NUL"),
        ('{"a":' * 40 + "1" + "}" * 40, "nests deeper"),
    ],
)
def test_a_json_object_refuses_what_jsonb_or_orjson_would(document: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(JsonObject).validate_json(document)
    assert problem in str(caught.value)


def test_a_json_object_is_bounded_in_bytes() -> None:
    TypeAdapter(JsonObject).validate_python({"a": "x" * (MAX_JSON_BYTES - 100)})
    assert "bytes as JSON" in _refused(TypeAdapter(JsonObject), {"a": "x" * MAX_JSON_BYTES})


def test_a_raw_prediction_names_the_field_at_fault() -> None:
    base = {
        "deployment_id": "00000000-0000-0000-0000-000000000001",
        "image_object_key": "images/ab/" + "ab" * 32 + ".png",
        "width": 64,
        "height": 48,
        "champion": {"prediction": samples.detection((0.9,)).model_dump(mode="json"), "latency_ms": 1.0},
    }
    RawPrediction.model_validate(base)
    cases = {
        "tags[0]": {"tags": ["a\x00b"]},
        "metadata": {"metadata": {"n": 2**64}},
        "width": {"width": 2**40},
        "source": {"source": "edge\x00"},
        "champion.latency_ms": {"champion": base["champion"] | {"latency_ms": math.inf}},
        "champion.prediction.boxes[0][0]": {
            "champion": base["champion"]
            | {"prediction": base["champion"]["prediction"] | {"boxes": [[math.nan, 0, 1, 1]]}}
        },
        "champion.prediction.classes[0]": {
            "champion": base["champion"]
            | {"prediction": base["champion"]["prediction"] | {"classes": ["c\x00t"]}}
        },
    }
    for field, change in cases.items():
        with pytest.raises(ValidationError) as caught:
            RawPrediction.model_validate(base | change)
        assert describe(caught.value).startswith(field), (field, describe(caught.value))


# --- every request body ------------------------------------------------------------------------------


def _request_models() -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = {MonitorFields, MonitorPrediction, RawPrediction}
    pending: list[type[BaseModel]] = [common.Body]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.add(sub)
            pending.append(sub)
    return found


def _unbounded(schema: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    """Paths of strings that may hold control characters and integers without a maximum."""
    if "$ref" in schema:
        return _unbounded(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, path)
    found = [
        p
        for key in ("anyOf", "oneOf", "allOf")
        for s in schema.get(key, [])
        for p in _unbounded(s, defs, path)
    ]
    kind = schema.get("type")
    if kind == "string" and not {"pattern", "enum", "format", "const"} & set(schema):
        found.append(path)
    if kind == "integer" and not {"maximum", "exclusiveMaximum"} & set(schema):
        found.append(path)
    if kind == "object":
        for name, sub in schema.get("properties", {}).items():
            found += _unbounded(sub, defs, f"{path}.{name}")
        for key, suffix in (("additionalProperties", "{}"), ("propertyNames", "<key>")):
            if isinstance(schema.get(key), dict):
                found += _unbounded(schema[key], defs, f"{path}{suffix}")
    if kind == "array":
        for sub in [schema.get("items"), *schema.get("prefixItems", [])]:
            if isinstance(sub, dict):
                found += _unbounded(sub, defs, f"{path}[]")
    return found


def test_every_request_body_bounds_its_text_and_integers() -> None:
    unbounded = set()
    for model in _request_models():
        schema = model.model_json_schema()
        unbounded |= set(_unbounded(schema, schema.get("$defs", {}), model.__name__))
    # Checked otherwise: base64 by its alphabet when decoded, image keys by their content-address form.
    assert unbounded == {
        f"{model}.{field}"
        for model in ("MonitorPrediction", "RawPrediction")
        for field in ("image_base64", "image_object_key")
    }
