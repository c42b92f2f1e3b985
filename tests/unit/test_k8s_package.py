"""The kustomize package as an operator applies it (base, overlays/local, overlays/gpu), rendered offline.

Structure that `kubernetes-validate` cannot see: every workload hardened, probed, sized, budgeted and
scraped; the settings each container gets; the job runner's rights and template; the topics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cvloop.settings import every_env_name
from schemas.topics import TOPICS, Topic
from services.common.kafka.faust_topics import all_topic_specs
from tests.k8s import K8S, PACKAGES, render_documents
from tests.k8s_model import (
    SERVICE_MODULES,
    by_name,
    container_env,
    generated,
    job_template,
    of_kind,
    pods,
    selects,
)

# Triton's own image writes under its install tree, so only its root file system stays writable.
WRITABLE_ROOT = {"cvloop-triton"}
# The job runner's names from the lead's contract, until the jobs branch adds them to Settings.
JOB_RUNNER_ENV = {
    "JOBS_BACKEND",
    "JOBS_MAX_CONCURRENT",
    "JOBS_TIMEOUT_S",
    "JOBS_KUBERNETES_NAMESPACE",
    "JOBS_IMAGE",
    "JOBS_KUBERNETES_TEMPLATE",
}
SECRET_ENV = {"DATABASE_URL", "S3_ACCESS_KEY", "S3_SECRET_KEY"}
SETTINGS_ENV = every_env_name()


@pytest.fixture(scope="module", params=sorted(PACKAGES))
def package(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render_documents(PACKAGES[request.param])


def _documents(package: tuple[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return package[1]


def _deployments(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return by_name(documents, "Deployment")


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def test_every_service_runs_its_module_in_one_namespace(package: tuple[str, list[dict[str, Any]]]) -> None:
    documents = _documents(package)
    deployments = _deployments(documents)
    assert set(deployments) == {f"cvloop-{c}" for c in SERVICE_MODULES} | {"cvloop-triton"}
    for component, module in SERVICE_MODULES.items():
        (container,) = deployments[f"cvloop-{component}"]["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", module]
        assert container["image"].split(":")[0] == f"cvloop-{component}"
    namespaced = [doc for doc in documents if doc["kind"] != "Namespace"]
    assert {doc["metadata"].get("namespace") for doc in namespaced} == {"cvloop"}


def test_every_pod_runs_as_non_root_without_capabilities(package: tuple[str, list[dict[str, Any]]]) -> None:
    for pod in pods(_documents(package)):
        security = pod.spec["securityContext"]
        assert security["runAsNonRoot"] is True, pod.owner
        assert security.get("runAsUser", 1) != 0, pod.owner
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, pod.owner
        for container in pod.containers:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, pod.owner
            assert context["capabilities"]["drop"] == ["ALL"], pod.owner
            assert "add" not in context["capabilities"], pod.owner
            if pod.owner in WRITABLE_ROOT:
                continue
            assert context["readOnlyRootFilesystem"] is True, pod.owner
            # What a process may write goes to an emptyDir: /tmp always.
            empty_dirs = {v["name"] for v in pod.spec["volumes"] if "emptyDir" in v}
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/tmp"] in empty_dirs, pod.owner


def test_only_the_job_runner_holds_a_kubernetes_api_token(package: tuple[str, list[dict[str, Any]]]) -> None:
    for pod in pods(_documents(package)):
        mounted = pod.spec.get("automountServiceAccountToken", True)
        assert mounted is (pod.owner == "cvloop-job-runner"), pod.owner


def test_every_container_is_probed_and_sized(package: tuple[str, list[dict[str, Any]]]) -> None:
    for name, deployment in _deployments(_documents(package)).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in {p["name"] for p in container["ports"]}, name
        if name != "cvloop-triton":
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) & set(resources["limits"]), name


def test_every_deployment_has_a_budget_that_lets_a_drain_through(
    package: tuple[str, list[dict[str, Any]]],
) -> None:
    documents = _documents(package)
    deployments = _deployments(documents)
    budgets = of_kind(documents, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        (budget,) = [b for b in budgets if selects(b["spec"]["selector"], _pod_labels(deployment))]
        assert budget["metadata"]["name"] == name
        # An eviction must be possible at any replica count (a one-replica overlay, a scaled-down HPA).
        assert (
            budget["spec"].get("maxUnavailable", 0) >= 1
            or budget["spec"]["minAvailable"] < (deployment["spec"]["replicas"])
        ), name
    for budget in budgets:  # and a budget never spans two Deployments
        selected = [d for d in deployments.values() if selects(budget["spec"]["selector"], _pod_labels(d))]
        assert len(selected) == 1, budget["metadata"]["name"]


def test_every_service_is_scraped_by_a_service_monitor(package: tuple[str, list[dict[str, Any]]]) -> None:
    documents = _documents(package)
    services = by_name(documents, "Service")
    monitors = of_kind(documents, "ServiceMonitor")
    for name, deployment in _deployments(documents).items():
        pod_labels = _pod_labels(deployment)
        (service,) = [
            s for s in services.values() if selects({"matchLabels": s["spec"]["selector"]}, pod_labels)
        ]
        assert service["metadata"]["name"] == name
        (monitor,) = [m for m in monitors if selects(m["spec"]["selector"], service["metadata"]["labels"])]
        (endpoint,) = monitor["spec"]["endpoints"]
        # Prometheus' `job` label is then the Service's name, `cvloop-<component>`, as the alert rules expect.
        assert (
            "jobLabel" not in monitor["spec"]
            and name == f"cvloop-{_pod_labels(deployment)['app.kubernetes.io/component']}"
        )
        service_ports = {p["name"]: p for p in service["spec"]["ports"]}
        assert endpoint["port"] in service_ports, name
        # The scraped port is the one the pod's prometheus.io annotations name.
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        target = service_ports[endpoint["port"]]["targetPort"]
        (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == target]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port), name
        assert endpoint["path"] == annotations["prometheus.io/path"] == "/metrics", name


def test_python_services_get_their_settings_and_only_known_names(
    package: tuple[str, list[dict[str, Any]]],
) -> None:
    documents = _documents(package)
    known = SETTINGS_ENV | JOB_RUNNER_ENV | {"TMPDIR"}
    triton_service = by_name(documents, "Service")["cvloop-triton"]
    triton_ports = {p["name"]: p["port"] for p in triton_service["spec"]["ports"]}
    for component in SERVICE_MODULES:
        deployment = _deployments(documents)[f"cvloop-{component}"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = container_env(documents, container)
        assert set(env) <= known, (component, set(env) - known)  # a misspelt name would be ignored
        assert env["CVLOOP_BIND_HOST"] == "0.0.0.0"
        assert env["CVLOOP_HTTP_PORT"] == str(container["ports"][0]["containerPort"])
        # Unset, these point at the local stack (127.0.0.1): in a pod they must be set.
        for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "S3_ENDPOINT", *SECRET_ENV):
            assert env[name], (component, name)
        literal = {v["name"] for v in container.get("env", [])}
        assert not literal & SECRET_ENV, component  # secrets come from the Secret only
    serving = _deployments(documents)["cvloop-serving"]["spec"]["template"]["spec"]["containers"][0]
    env = container_env(documents, serving)
    assert env["TRITON_URL"] == f"cvloop-triton:{triton_ports['http']}"
    assert env["TRITON_GRPC_URL"] == f"cvloop-triton:{triton_ports['grpc']}"
    assert env["TRITON_MODEL_BACKEND"] == "onnxruntime"  # the NVIDIA image runs it, on CPU or GPU
    for config_map in of_kind(documents, "ConfigMap"):
        assert not set(config_map["data"]) & SECRET_ENV, config_map["metadata"]["name"]


def test_the_job_runner_may_run_jobs_and_read_their_logs_and_nothing_else(
    package: tuple[str, list[dict[str, Any]]],
) -> None:
    documents = _documents(package)
    runner = _deployments(documents)["cvloop-job-runner"]["spec"]["template"]["spec"]
    assert runner["serviceAccountName"] == "cvloop-job-runner"
    assert "cvloop-job-runner" in by_name(documents, "ServiceAccount")
    (role,) = of_kind(documents, "Role")
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("batch",), ("jobs",)): {"create", "get", "list", "watch", "delete"},
        (("",), ("pods", "pods/log")): {"get", "list", "watch"},
    }
    (binding,) = of_kind(documents, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cvloop-job-runner", "namespace": "cvloop"}
    ]
    assert not of_kind(documents, "ClusterRole") and not of_kind(documents, "ClusterRoleBinding")


def test_the_job_runner_mounts_the_job_template_it_is_told_to_read(
    package: tuple[str, list[dict[str, Any]]],
) -> None:
    name, documents = package
    yaml = pytest.importorskip("yaml")
    spec = _deployments(documents)["cvloop-job-runner"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = container_env(documents, container)
    template = generated(documents, "ConfigMap", "cvloop-job-template")
    assert template["data"]["job.yaml"] == (K8S / "jobs" / "job.yaml").read_text()
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    template_path = Path(env["JOBS_KUBERNETES_TEMPLATE"])
    mount = mounts[str(template_path.parent)]
    assert volumes[mount["name"]]["configMap"]["name"] == template["metadata"]["name"]
    assert template_path.name in template["data"]
    assert yaml.safe_load(template["data"][template_path.name])["kind"] == "Job"
    assert env["JOBS_BACKEND"] == "kubernetes"
    assert env["JOBS_KUBERNETES_NAMESPACE"] == "fieldRef:metadata.namespace"  # where its Role holds
    # The Jobs run the base image of the same release as the services.
    image, tag = env["JOBS_IMAGE"].split(":")
    service_tags = {c["image"].split(":")[1] for c in _python_containers(documents)}
    assert image == "cvloop" and service_tags == {tag}, name


def test_the_job_template_names_settings_the_package_has_and_sizes_its_containers(
    package: tuple[str, list[dict[str, Any]]],
) -> None:
    """The template is a file in a ConfigMap: kustomize does not rewrite the names in it, so the ConfigMaps
    and Secrets it reads must exist under exactly those names."""
    documents = _documents(package)
    (job,) = [pod for pod in pods(documents) if pod.owner == "job-template"]
    config_maps, secrets = by_name(documents, "ConfigMap"), by_name(documents, "Secret")
    for container in job.containers:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps, container["name"]
            else:
                assert source["secretRef"]["name"] in secrets, container["name"]
        env = container_env(documents, container)
        assert set(env) <= SETTINGS_ENV | JOB_RUNNER_ENV, container["name"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
        assert "memory" in container["resources"]["limits"], container["name"]
    assert job_template(documents)["spec"]["backoffLimit"] == 0  # a re-run is a new run, not a retry


def _python_containers(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        _deployments(documents)[f"cvloop-{component}"]["spec"]["template"]["spec"]["containers"][0]
        for component in SERVICE_MODULES
    ]


def test_every_registry_topic_is_a_kafka_topic(package: tuple[str, list[dict[str, Any]]]) -> None:
    name, documents = package
    topics = {t["spec"]["topicName"]: t for t in of_kind(documents, "KafkaTopic")}
    specs = {spec.name: spec for spec in all_topic_specs()}
    assert set(topics) == set(specs) and set(TOPICS) <= set(topics)
    for topic_name, spec in specs.items():
        topic = topics[topic_name]
        assert topic["spec"]["partitions"] == spec.partitions
        assert topic["spec"]["config"] == spec.kafka_config()
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "cvloop"
        # A local Strimzi cluster has one broker.
        assert topic["spec"]["replicas"] == (1 if name == "local" else spec.replication_factor)


def test_autoscaling_fits_the_partitions_and_the_overlay(package: tuple[str, list[dict[str, Any]]]) -> None:
    name, documents = package
    deployments = _deployments(documents)
    autoscalers = by_name(documents, "HorizontalPodAutoscaler")
    if name == "local":
        assert not autoscalers
        assert {d["spec"]["replicas"] for d in deployments.values()} == {1}
        return
    assert set(autoscalers) == {f"cvloop-{c}" for c in ("api", "ingest", "scoring", "serving", "pipeline")}
    for hpa_name, hpa in autoscalers.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", hpa_name)
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"], hpa_name
    # A stream replica past its source topic's partitions gets none to read.
    assert autoscalers["cvloop-scoring"]["spec"]["maxReplicas"] <= TOPICS[Topic.PREDICTIONS].partitions
    assert autoscalers["cvloop-pipeline"]["spec"]["maxReplicas"] <= TOPICS[Topic.FEEDBACK].partitions


def test_the_local_overlay_runs_local_images_and_the_gpu_overlay_a_gpu() -> None:
    local = render_documents(PACKAGES["local"])
    assert {c["image"].split(":")[1] for c in _python_containers(local)} == {"dev"}
    gpu = render_documents(PACKAGES["gpu"])
    (triton,) = _deployments(gpu)["cvloop-triton"]["spec"]["template"]["spec"]["containers"]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert all(c["image"].split(":")[1] not in {"latest", "dev"} for c in _python_containers(gpu))
    for documents in (local, render_documents(PACKAGES["base"])):
        (cpu_triton,) = _deployments(documents)["cvloop-triton"]["spec"]["template"]["spec"]["containers"]
        assert "nvidia.com/gpu" not in cpu_triton["resources"]["limits"]


def test_pod_labels_name_their_component(package: tuple[str, list[dict[str, Any]]]) -> None:
    for pod in pods(_documents(package)):
        assert pod.labels["app.kubernetes.io/part-of"] == "cvloop"
        assert pod.component == ("job" if pod.owner == "job-template" else pod.owner.removeprefix("cvloop-"))
