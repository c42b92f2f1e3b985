"""The OpenAPI documents of api, ingest and serving describe their real error answers and request bodies:
every operation documents the one error body for what any keyed route answers, FastAPI's own 422 schema
(which no answer matches) is gone, every reference resolves, and the routes that read their body
themselves declare it. The answers matching these schemas are checked against the running services
(tests/integration)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from schemas.api.common import ErrorBody
from services.api.app import build_app as api_app
from services.api.settings import ApiSettings
from services.common.http import KEYED_ERRORS
from services.ingest.app import build_app as ingest_app
from services.ingest.settings import IngestSettings
from services.serving.app import build_app as serving_app
from services.serving.settings import ServingSettings

APPS = {
    "api": lambda: api_app(ApiSettings()),
    "ingest": lambda: ingest_app(IngestSettings()),
    "serving": lambda: serving_app(ServingSettings()),
}
METHODS = {"get", "post", "put", "patch", "delete"}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {node["$ref"]} if "$ref" in node else {r for value in node.values() for r in _refs(value)}
    if isinstance(node, list):
        return {r for value in node for r in _refs(value)}
    return set()


@pytest.mark.parametrize("service", APPS)
def test_every_operation_documents_the_error_body(service: str) -> None:
    spec = APPS[service]().openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for method, path, operation in _operations(spec):
        for status in KEYED_ERRORS:
            response = operation["responses"][str(status)]
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    documented = spec["components"]["schemas"]["ErrorBody"]
    assert set(documented["required"]) == set(ErrorBody.model_fields) == {"detail", "errors"}


@pytest.mark.parametrize("service", APPS)
def test_every_reference_resolves(service: str) -> None:
    spec = APPS[service]().openapi()
    missing = {ref for ref in _refs(spec) if ref.rsplit("/", 1)[-1] not in spec["components"]["schemas"]}
    assert not missing


@pytest.mark.parametrize(
    ("build", "path", "media_types"),
    [
        (
            APPS["ingest"],
            "/v1/deployments/{deployment_id}/predictions",
            {"application/json", "multipart/form-data"},
        ),
        (APPS["ingest"], "/v1/deployments/{deployment_id}/predictions:batch", {"application/json"}),
        (
            APPS["serving"],
            "/v1/deployments/{deployment_id}/predict",
            {"image/jpeg", "image/png", "image/webp", "application/octet-stream", "multipart/form-data"},
        ),
        (
            APPS["serving"],
            "/v2/models/{deployment_id}/infer",
            {"application/json", "application/octet-stream"},
        ),
    ],
)
def test_routes_reading_their_own_body_declare_it(build: Any, path: str, media_types: set[str]) -> None:
    app: FastAPI = build()
    body = app.openapi()["paths"][path]["post"]["requestBody"]
    assert body["required"] and set(body["content"]) == media_types


def test_writes_document_409_and_uploads_413_and_415() -> None:
    spec = APPS["api"]().openapi()
    for method, path, operation in _operations(spec):
        assert ("409" in operation["responses"]) == (method != "get"), (method, path)
    upload = spec["paths"]["/v1/uploads"]["post"]["responses"]
    assert {"413", "415"} <= set(upload)


@pytest.mark.parametrize("service", APPS)
def test_every_query_parameter_is_bounded(service: str) -> None:
    """A query string reaches SQL too: its text holds no control character, its integers fit a bigint."""
    spec = APPS[service]().openapi()
    loose = []
    for method, path, operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            schemas = [parameter["schema"], *parameter["schema"].get("anyOf", [])]
            for schema in [s.get("items", s) for s in schemas]:
                if schema.get("type") == "string" and not {"pattern", "enum", "format"} & set(schema):
                    loose.append((method, path, parameter["name"]))
                if schema.get("type") == "integer" and "maximum" not in schema:
                    loose.append((method, path, parameter["name"]))
    assert not loose
