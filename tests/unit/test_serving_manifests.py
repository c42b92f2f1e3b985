"""Serving's and Triton's Kubernetes manifests and the GPU overlay, rendered offline with `kubectl
kustomize`."""

from __future__ import annotations

from typing import Any

from tests.k8s import K8S, render


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_serving_runs_with_probes_metrics_resources_and_an_hpa() -> None:
    rendered = render(K8S / "base" / "serving")
    assert set(rendered) == {
        ("Deployment", "cvloop-serving"),
        ("Service", "cvloop-serving"),
        ("HorizontalPodAutoscaler", "cvloop-serving"),
        ("PodDisruptionBudget", "cvloop-serving"),
        ("ServiceMonitor", "cvloop-serving"),
    }
    deployment = rendered["Deployment", "cvloop-serving"]
    pod = deployment["spec"]["template"]
    container = _container(deployment)
    assert container["command"] == ["python", "-m", "services.serving"]
    port = container["ports"][0]["containerPort"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CVLOOP_HTTP_PORT"] == str(port)
    assert env["TRITON_MODEL_BACKEND"] == "onnxruntime"
    assert env["TRITON_GRPC_URL"] == "cvloop-triton:8001"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    hpa = rendered["HorizontalPodAutoscaler", "cvloop-serving"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "cvloop-serving"
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    labels = pod["metadata"]["labels"]
    assert rendered["Service", "cvloop-serving"]["spec"]["selector"].items() <= labels.items()


def test_triton_is_cpu_in_the_base_and_gets_a_gpu_in_the_overlay() -> None:
    base = _container(render(K8S / "base" / "triton")["Deployment", "cvloop-triton"])
    assert "--model-control-mode=explicit" in base["args"]
    assert base["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert "nvidia.com/gpu" not in base["resources"]["limits"]
    overlay = render(K8S / "overlays" / "gpu")
    triton = overlay["Deployment", "cvloop-triton"]
    resources = _container(triton)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert resources["requests"]["cpu"] == base["resources"]["requests"]["cpu"]  # merged, not replaced
    assert triton["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    ports = {p["name"]: p["port"] for p in overlay["Service", "cvloop-triton"]["spec"]["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert ("Deployment", "cvloop-serving") in overlay
