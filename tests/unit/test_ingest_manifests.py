"""ingest's Kubernetes manifests, rendered offline with `kubectl kustomize`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s import K8S, render


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    return {kind: doc for (kind, _), doc in render(K8S / "base" / "ingest").items()}


def test_the_deployment_runs_ingest_with_probes_metrics_and_resources(
    rendered: dict[str, dict[str, Any]],
) -> None:
    assert set(rendered) == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
    }
    pod = rendered["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["python", "-m", "services.ingest"]
    port = container["ports"][0]["containerPort"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CVLOOP_HTTP_PORT"] == str(port)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])


def test_service_and_budget_select_the_pods(rendered: dict[str, dict[str, Any]]) -> None:
    labels = rendered["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert rendered["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert rendered["Service"]["spec"]["selector"].items() <= labels.items()
    assert rendered["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "ingest"
