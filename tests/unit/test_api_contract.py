"""The control plane answers exactly the routes docs/api.md gives it (every section but Ingest and
Serving, which other services answer)."""

from __future__ import annotations

import re
from pathlib import Path
from uuid import uuid4

from fastapi.testclient import TestClient

from services.api.app import build_app
from services.api.settings import ApiSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
OTHER_SERVICES = ("Ingest", "Serving")
ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|")


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def documented_routes() -> set[tuple[str, str]]:
    routes, section = set(), ""
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:]
        elif (match := ROW.match(line)) and not section.startswith(OTHER_SERVICES):
            routes.add((match.group(1), _template(match.group(2))))
    return routes


def test_the_api_answers_exactly_the_documented_routes() -> None:
    spec = build_app(ApiSettings()).openapi()
    served = {(method.upper(), _template(path)) for path, item in spec["paths"].items() for method in item}
    assert len(documented_routes()) > 40
    assert served == documented_routes()


def test_every_v1_route_requires_a_bearer_key() -> None:
    spec = build_app(ApiSettings()).openapi()
    unguarded = [
        (method, path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if path.startswith("/v1") and not operation.get("security")
    ]
    assert not unguarded


def test_every_v1_route_answers_401_without_a_key() -> None:
    app = build_app(ApiSettings())
    app.state.context = object()  # never reached: the key is checked first
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: no servers needed
    for path, item in app.openapi()["paths"].items():
        if path.startswith("/v1"):
            concrete = re.sub(r"\{[^}]+\}", str(uuid4()), path)
            for method in item:
                answer = client.request(method.upper(), concrete)
                assert answer.status_code == 401, (method, path, answer.text)
                assert answer.json()["errors"][0]["field"] == "authorization"
