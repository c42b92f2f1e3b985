"""The NetworkPolicies admit exactly what each pod needs, read from the rendered package.

Default deny; then the addresses in the settings each pod gets (Kafka, Postgres, S3, Triton) must be
reachable from it, its /metrics from Prometheus, and only api, ingest and serving from anywhere.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.k8s import PACKAGES, render_documents
from tests.k8s_model import Pod, by_name, container_env, of_kind, pods, selects

MONITORING_NAMESPACE = "monitoring"
PUBLIC = {"api", "ingest", "serving"}
NAMESPACE = "kubernetes.io/metadata.name"


@pytest.fixture(scope="module", params=sorted(PACKAGES))
def documents(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render_documents(PACKAGES[request.param])


def _policies(documents: list[dict[str, Any]], pod: Pod, direction: str) -> list[dict[str, Any]]:
    return [
        p["spec"]
        for p in of_kind(documents, "NetworkPolicy")
        if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod.labels)
    ]


def _port_allowed(rule: dict[str, Any], pod: Pod, port: int) -> bool:
    """Whether a rule's ports admit `port` (named ports resolve on `pod`, the side that owns them)."""
    if "ports" not in rule:
        return True
    for allowed in rule["ports"]:
        number = allowed["port"]
        if isinstance(number, str):
            try:
                number = pod.container_port(number)
            except KeyError:
                continue
        if number == port:
            return True
    return False


def _peer_matches(peer: dict[str, Any], namespace: str, labels: dict[str, str] | None) -> bool:
    """Whether a `to`/`from` peer admits a pod with `labels` in `namespace` (labels None: any pod)."""
    if "ipBlock" in peer:
        return False  # the checks below name in-cluster peers
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {NAMESPACE: namespace}):
            return False
    elif namespace != "cvloop":
        return False
    if "podSelector" in peer:
        return labels is not None and selects(peer["podSelector"], labels)
    return True


def egress_allowed(
    documents: list[dict[str, Any]], pod: Pod, namespace: str, port: int, labels: dict[str, str] | None = None
) -> bool:
    for policy in _policies(documents, pod, "Egress"):
        for rule in policy.get("egress", []):
            peers = rule.get("to")
            if (peers is None or any(_peer_matches(p, namespace, labels) for p in peers)) and _port_allowed(
                rule, pod, port
            ):
                return True
    return False


def ingress_allowed(
    documents: list[dict[str, Any]],
    pod: Pod,
    namespace: str | None,
    port: int,
    labels: dict[str, str] | None = None,
) -> bool:
    """namespace None: a client anywhere (another namespace, outside the cluster)."""
    for policy in _policies(documents, pod, "Ingress"):
        for rule in policy.get("ingress", []):
            peers = rule.get("from")
            admitted = peers is None or (
                namespace is not None and any(_peer_matches(p, namespace, labels) for p in peers)
            )
            if admitted and _port_allowed(rule, pod, port):
                return True
    return False


def _host_port(address: str) -> tuple[str, int]:
    parsed = urlsplit(address if "://" in address else f"tcp://{address}")
    assert parsed.hostname and parsed.port, address
    return parsed.hostname, parsed.port


def _namespace_of(host: str) -> str:
    """`service.namespace[.svc...]` names a Service in another namespace; a bare name is in cvloop."""
    parts = host.split(".")
    return parts[1] if len(parts) > 1 else "cvloop"


def _pod_env(documents: list[dict[str, Any]], pod: Pod) -> dict[str, str]:
    """Every setting any of the pod's containers reads (a Job's workspace steps read the platform's)."""
    env: dict[str, str] = {}
    for container in pod.containers:
        env |= container_env(documents, container)
    return env


def test_everything_is_denied_unless_allowed(documents: list[dict[str, Any]]) -> None:
    deny = [
        p["spec"]
        for p in of_kind(documents, "NetworkPolicy")
        if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ]
    assert deny == [{"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}]


def test_every_pod_reaches_dns_kafka_postgres_and_s3_where_its_settings_point(
    documents: list[dict[str, Any]],
) -> None:
    for pod in pods(documents):
        dns = {"k8s-app": "kube-dns"}
        assert egress_allowed(documents, pod, "kube-system", 53, dns), pod.owner
        if pod.component == "triton":
            continue
        env = _pod_env(documents, pod)
        kafka = env["KAFKA_BOOTSTRAP_SERVERS"].split(",")
        addresses = [env["DATABASE_URL"], env["S3_ENDPOINT"], *kafka]
        for address in addresses:
            host, port = _host_port(address)
            # A Job pod's workspace steps need Postgres and S3, never Kafka.
            expected = pod.owner != "job-template" or address not in kafka
            assert egress_allowed(documents, pod, _namespace_of(host), port) is expected, (pod.owner, address)


def test_a_job_pod_reaches_no_cvloop_service_and_holds_no_platform_secret(
    documents: list[dict[str, Any]],
) -> None:
    (job,) = [pod for pod in pods(documents) if pod.owner == "job-template"]
    for other in pods(documents):
        for port in [p["containerPort"] for c in other.containers for p in c.get("ports", [])]:
            assert not egress_allowed(documents, job, "cvloop", port, other.labels), (other.owner, port)
    for container in job.containers:
        secrets = {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
        assert secrets <= {"cvloop-job-workspace"}, container["name"]
        if container["name"] == "job":
            assert "envFrom" not in container and not container.get("env"), "the job container reads nothing"
    assert job.spec["automountServiceAccountToken"] is False


def test_serving_and_only_serving_reaches_triton(documents: list[dict[str, Any]]) -> None:
    every = pods(documents)
    (serving,) = [p for p in every if p.component == "serving"]
    (triton,) = [p for p in every if p.component == "triton"]
    env = _pod_env(documents, serving)
    triton_service = by_name(documents, "Service")["cvloop-triton"]
    for address in (env["TRITON_URL"], env["TRITON_GRPC_URL"]):
        host, service_port = _host_port(address)
        assert host == "cvloop-triton"
        (port,) = [p for p in triton_service["spec"]["ports"] if p["port"] == service_port]
        pod_port = triton.container_port(port["targetPort"])
        assert egress_allowed(documents, serving, "cvloop", pod_port, triton.labels), address
        assert ingress_allowed(documents, triton, "cvloop", pod_port, serving.labels), address
        for other in every:
            if other.component != "serving":
                assert not ingress_allowed(documents, triton, "cvloop", pod_port, other.labels), other.owner
                assert not egress_allowed(documents, other, "cvloop", pod_port, triton.labels), other.owner


def test_prometheus_scrapes_every_pod_and_only_public_services_take_clients(
    documents: list[dict[str, Any]],
) -> None:
    services = by_name(documents, "Service")
    monitors = of_kind(documents, "ServiceMonitor")
    for pod in pods(documents):
        if pod.owner == "job-template":
            assert not any(p.get("ingress") for p in _policies(documents, pod, "Ingress")), (
                "a Job takes no traffic"
            )
            continue
        service = services[pod.owner]
        (monitor,) = [m for m in monitors if selects(m["spec"]["selector"], service["metadata"]["labels"])]
        (endpoint,) = monitor["spec"]["endpoints"]
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        metrics_port = pod.container_port(port["targetPort"])
        assert ingress_allowed(documents, pod, MONITORING_NAMESPACE, metrics_port), pod.owner
        http_port = pod.container_port("http")
        public = ingress_allowed(documents, pod, None, http_port)
        assert public is (pod.component in PUBLIC), pod.owner
        if pod.component not in PUBLIC:
            assert not ingress_allowed(documents, pod, "elsewhere", metrics_port), pod.owner


def test_only_the_job_runner_reaches_the_kubernetes_api(documents: list[dict[str, Any]]) -> None:
    for pod in pods(documents):
        reaches = any(egress_allowed(documents, pod, "default", port) for port in (443, 6443))
        assert reaches is (pod.component == "job-runner"), pod.owner
