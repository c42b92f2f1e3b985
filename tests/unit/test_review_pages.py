"""The review page's shells: each page renders with its ids and script, the static files are served,
and none of them is in the OpenAPI document (they are not part of the JSON API)."""

from __future__ import annotations

import re
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from scripts.vendor_js import VENDOR
from services.api.app import build_app
from services.api.settings import ApiSettings

ID = uuid4()


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(build_app(ApiSettings()))  # no lifespan: the pages need neither Postgres nor Kafka


@pytest.mark.parametrize(
    ("path", "script", "marker"),
    [
        ("/review", "deployments.js", 'id="deployments"'),
        (f"/review/deployments/{ID}", "predictions.js", f'data-deployment="{ID}"'),
        (f"/review/predictions/{ID}", "prediction.js", f'data-prediction="{ID}"'),
        (f"/review/deployments/{ID}/pipeline", "pipeline.js", 'id="promote"'),
        (f"/review/deployments/{ID}/pipeline", "pipeline.js", 'id="continuous-training-form"'),
        (f"/review/deployments/{ID}/dashboard", "dashboard.js", 'data-chart="drift"'),
        ("/review/jobs", "jobs.js", 'id="jobs"'),
        (f"/review/jobs/{ID}", "job.js", 'id="rerun"'),
        ("/review/processings", "processings.js", 'id="launch-form"'),
    ],
)
def test_pages_render(client: TestClient, path: str, script: str, marker: str) -> None:
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'src="/review/static/{script}"' in page.text and marker in page.text
    assert client.get(f"/review/static/{script}").status_code == 200


def test_the_dashboard_loads_its_charting_library_from_the_api(client: TestClient) -> None:
    page = client.get(f"/review/deployments/{ID}/dashboard")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert not [s for s in sources if "//" in s]  # nothing from another host
    for vendored in ("uPlot.iife.min.js", "uPlot.min.css"):
        path = f"/review/static/vendor/uplot/{vendored}"
        assert path in sources
        assert client.get(path).content == (VENDOR / "uplot" / vendored).read_bytes()


def test_bad_ids_and_unknown_files(client: TestClient) -> None:
    assert client.get("/review/predictions/not-a-uuid").status_code == 422
    assert client.get("/review/static/missing.js").status_code == 404


def test_home_leads_to_the_review_page(client: TestClient) -> None:
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/review"


def test_pages_stay_out_of_the_api_document(client: TestClient) -> None:
    assert not [p for p in client.app.openapi()["paths"] if p == "/" or p.startswith("/review")]
