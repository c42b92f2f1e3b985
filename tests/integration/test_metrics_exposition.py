"""`promtool check metrics` on the /metrics of every cvloop service the local stack starts (each
`PythonService` component, so a service joining `cvloop up` is checked too), after real traffic: the
demo deployment answers predictions through serving, which scoring and ingest then consume, so the
expositions carry samples and not only empty families."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from cvloop.demo.digits import digit_png
from cvloop.stack import stack
from cvloop.stack.service import PythonService
from cvloop.stack.settings import StackSettings
from tests.promtool import promtool

WAIT_S = 90.0
PREDICTIONS = 5


def _services(settings: StackSettings) -> list[PythonService]:
    return [c for c in stack.components(settings) if isinstance(c, PythonService)]


SERVICE_NAMES = [service.name for service in _services(StackSettings())]


@pytest.fixture(scope="module")
def running(
    postgres_settings: StackSettings,
    kafka_settings: StackSettings,
    s3_settings: StackSettings,
    triton_settings: StackSettings,
) -> Iterator[dict[str, PythonService]]:
    """Every service plus the demo deployment, on the session's servers, with predictions served."""
    names = [*SERVICE_NAMES, "demo"]
    for health in stack.up(postgres_settings, names):
        assert health.ok, health
    try:
        _serve_predictions(postgres_settings)
        yield {service.name: service for service in _services(postgres_settings)}
    finally:
        for _ in stack.down(postgres_settings, names):
            pass


def _serve_predictions(settings: StackSettings) -> None:
    demo_dir = settings.state_path / "demo"
    deployment = (demo_dir / "deployment").read_text().strip()
    key = (demo_dir / "api-key").read_text().strip()
    url = f"http://127.0.0.1:{settings.serving_port}/v1/deployments/{deployment}/predict"
    served = 0
    deadline = time.monotonic() + WAIT_S
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=10.0) as http:
        while served < PREDICTIONS:
            # 404 until serving has read the demo deployment, 503 until its champion is loaded on Triton.
            response = http.post(url, content=digit_png(served))
            if response.status_code == 200:
                served += 1
            else:
                assert response.status_code in (404, 503), response.text
                assert time.monotonic() < deadline, f"the demo deployment is not served: {response.text}"
                time.sleep(0.5)


def _exposition(service: PythonService) -> str:
    response = httpx.get(f"{service.address}/metrics", timeout=10.0)
    assert response.status_code == 200
    return response.text


def _samples(exposition: str, prefix: str) -> list[str]:
    return [line for line in exposition.splitlines() if line.startswith(prefix)]


def test_the_stack_has_the_four_services_at_least() -> None:
    assert {"serving", "ingest", "api", "scoring"} <= set(SERVICE_NAMES)


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_promtool_check_metrics(running: dict[str, PythonService], name: str) -> None:
    exposition = _exposition(running[name])
    assert "# TYPE cvloop_" in exposition, f"{name} exposes no cvloop metric"
    result = promtool("check", "metrics", stdin=exposition)
    assert result.returncode == 0, f"{name}'s /metrics:\n{result.stdout}"


def test_the_checked_expositions_carry_the_traffic(running: dict[str, PythonService]) -> None:
    """What the check above read had samples: the served predictions, and scoring and ingest consuming
    them (a few seconds after they were published)."""
    served = _samples(_exposition(running["serving"]), 'cvloop_serving_requests_total{deployment="')
    assert served and all(float(line.split()[-1]) >= 1 for line in served)
    deadline = time.monotonic() + WAIT_S
    while True:
        consumed = {
            name: _samples(_exposition(running[name]), prefix)
            for name, prefix in (("scoring", "cvloop_scoring_events_total{"), ("ingest", "cvloop_ingest_"))
        }
        if all(consumed.values()) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert all(consumed.values()), consumed
    for name in ("scoring", "ingest"):
        result = promtool("check", "metrics", stdin=_exposition(running[name]))
        assert result.returncode == 0, f"{name}'s /metrics:\n{result.stdout}"
