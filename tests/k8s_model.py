"""Reading rendered manifests: pods, label selectors and the environment a container gets.

Pure helpers over `kubectl kustomize` output (dicts), shared by the manifest tests.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import yaml

# The Python services: the module each runs (`python -m`), by component.
SERVICE_MODULES = {
    "api": "services.api",
    "ingest": "services.ingest",
    "scoring": "services.scoring",
    "serving": "services.serving",
    "pipeline": "services.pipeline",
    "job-runner": "services.pipeline.runner",
}
COMPONENT = "app.kubernetes.io/component"


@dataclass(frozen=True)
class Pod:
    """A pod the package creates: a Deployment's, or the job runner's Job template's."""

    owner: str  # Deployment name, or "job-template"
    labels: dict[str, str]
    spec: dict[str, Any]

    @property
    def component(self) -> str:
        return self.labels[COMPONENT]

    @property
    def containers(self) -> list[dict[str, Any]]:
        """Init containers (sidecars among them) and containers."""
        return [*self.spec.get("initContainers", []), *self.spec["containers"]]

    def container_port(self, name_or_number: str | int) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        for container in self.containers:
            for port in container.get("ports", []):
                if port.get("name") == name_or_number:
                    return int(port["containerPort"])
        raise KeyError(f"{self.owner} has no port named {name_or_number}")


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc["kind"] == kind]


def by_name(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in of_kind(documents, kind)}


def generated(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The ConfigMap or Secret a generator named `name` made (kustomize appends a content hash)."""
    (doc,) = [d for d in of_kind(documents, kind) if d["metadata"]["name"].rsplit("-", 1)[0] == name]
    return doc


def job_template(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(generated(documents, "ConfigMap", "cvloop-job-template")["data"]["job.yaml"])


def pods(documents: list[dict[str, Any]]) -> list[Pod]:
    found = [
        Pod(name, d["spec"]["template"]["metadata"]["labels"], d["spec"]["template"]["spec"])
        for name, d in by_name(documents, "Deployment").items()
    ]
    job = job_template(documents)["spec"]["template"]
    return [*found, Pod("job-template", job["metadata"]["labels"], job["spec"])]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes' LabelSelector semantics (an empty selector selects everything)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for requirement in selector.get("matchExpressions", []):
        key, operator, values = requirement["key"], requirement["operator"], requirement.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def container_env(documents: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The variables a container starts with: envFrom's ConfigMaps and Secrets, then env (which wins).

    A value from the downward API reads as `fieldRef:<path>`."""
    config_maps = by_name(documents, "ConfigMap")
    secrets = by_name(documents, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
        else:
            env.update(secret_data(secrets[source["secretRef"]["name"]]))
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            env[variable["name"]] = "fieldRef:" + variable["valueFrom"]["fieldRef"]["fieldPath"]
    return env


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
