"""The whole platform's kustomize base: every service, Triton, and the settings they share."""

from __future__ import annotations

from tests.k8s import K8S, render
from tests.k8s_model import SERVICE_MODULES


def test_the_base_holds_every_service_in_one_namespace_with_its_settings() -> None:
    rendered = render(K8S / "base")
    namespaced = [doc for (kind, _), doc in rendered.items() if kind != "Namespace"]
    assert all(doc["metadata"].get("namespace") == "cvloop" for doc in namespaced)
    config_maps = {name for kind, name in rendered if kind == "ConfigMap"}
    secrets = {name for kind, name in rendered if kind == "Secret"}
    for service in SERVICE_MODULES:
        pod = rendered["Deployment", f"cvloop-{service}"]["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["command"] == ["python", "-m", SERVICE_MODULES[service]]
        # kustomize renames the generated ConfigMap and Secret; the references must follow.
        sources = container["envFrom"]
        assert {s["configMapRef"]["name"] for s in sources if "configMapRef" in s} <= config_maps
        assert {s["secretRef"]["name"] for s in sources if "secretRef" in s} <= secrets
        selector = rendered["Service", f"cvloop-{service}"]["spec"]["selector"]
        assert selector.items() <= pod["metadata"]["labels"].items()
    assert ("Deployment", "cvloop-triton") in rendered


def test_the_gpu_overlay_is_the_whole_platform_with_a_gpu_for_triton() -> None:
    overlay = render(K8S / "overlays" / "gpu")
    assert {("Deployment", f"cvloop-{service}") for service in SERVICE_MODULES} <= set(overlay)
    (triton,) = overlay["Deployment", "cvloop-triton"]["spec"]["template"]["spec"]["containers"]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
