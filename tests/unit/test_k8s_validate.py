"""`kubernetes-validate --strict` on what kustomize renders, for the base and both overlays.

kubernetes-validate knows the built-in API only: it validates every built-in resource against the
Kubernetes OpenAPI schema with unknown fields rejected, and answers a custom resource (Strimzi's
KafkaTopic, the Prometheus operator's ServiceMonitor) with a warning and exit code 0. So the test runs the
command and then holds it to more than its exit code: each built-in resource must have passed for every
Kubernetes version checked, the only warnings must be for the custom kinds, and those custom resources
are validated as strictly by tests/k8s_custom_resources.py. The job runner's Job template, which the
package carries inside a ConfigMap, is validated the same way.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.k8s import PACKAGES, render_documents, render_text
from tests.k8s_custom_resources import CUSTOM_RESOURCES, validate_custom_resource
from tests.k8s_model import job_template

# The oldest Kubernetes the package supports, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30", "1.37")
PASSED = re.compile(r"^INFO .* passed for resource (?P<resource>\S+) against version (?P<version>\S+)$")
NO_SCHEMA = re.compile(r"^WARN .* Couldn't find schema for kind (?P<kind>\S+) with api version")


def kubernetes_validate(path: Path) -> tuple[int, list[str]]:
    pytest.importorskip("kubernetes_validate")
    versions = [arg for version in KUBERNETES_VERSIONS for arg in ("--kubernetes-version", version)]
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *versions, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.returncode, (result.stdout + result.stderr).splitlines()


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_the_rendered_package_validates_strictly(package: str, tmp_path: Path) -> None:
    rendered = tmp_path / f"{package}.yaml"
    rendered.write_text(render_text(PACKAGES[package]))
    documents = render_documents(PACKAGES[package])
    returncode, lines = kubernetes_validate(rendered)
    assert returncode == 0, "\n".join(line for line in lines if not line.startswith("INFO"))
    passed = {(m["resource"], m["version"]) for line in lines if (m := PASSED.match(line))}
    skipped = {m["kind"] for line in lines if (m := NO_SCHEMA.match(line))}
    built_in = [doc for doc in documents if doc["kind"] not in CUSTOM_RESOURCES]
    assert passed == {
        (f"{doc['kind'].lower()}/{doc['metadata']['name']}", version)
        for doc in built_in
        for version in KUBERNETES_VERSIONS
    }
    assert skipped == set(CUSTOM_RESOURCES)  # and nothing else went unvalidated
    assert len(lines) == len(passed) + sum(doc["kind"] in CUSTOM_RESOURCES for doc in documents) * len(
        KUBERNETES_VERSIONS
    )
    for doc in documents:
        if doc["kind"] in CUSTOM_RESOURCES:
            validate_custom_resource(doc)


def test_the_job_template_validates_strictly(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    template = tmp_path / "job.yaml"
    job = job_template(render_documents(PACKAGES["base"]))
    job["metadata"].setdefault("name", "a-run")  # the runner names each Job it makes from the template
    template.write_text(yaml.safe_dump(job))
    returncode, lines = kubernetes_validate(template)
    assert returncode == 0 and all(line.startswith("INFO") for line in lines), "\n".join(lines)
    assert len(lines) == len(KUBERNETES_VERSIONS)


def test_the_strict_check_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The command really is strict here: a misspelt field in a Deployment fails it."""
    yaml = pytest.importorskip("yaml")
    documents = render_documents(PACKAGES["base"])
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    returncode, lines = kubernetes_validate(broken)
    assert returncode == 1 and any("readinessProbes" in line for line in lines), lines


def test_a_custom_resource_with_an_unknown_field_is_rejected() -> None:
    pydantic = pytest.importorskip("pydantic")
    documents = render_documents(PACKAGES["base"])
    for kind in CUSTOM_RESOURCES:
        resource = next(doc for doc in documents if doc["kind"] == kind)
        resource["spec"]["partition"] = 6
        with pytest.raises(pydantic.ValidationError, match="partition"):
            validate_custom_resource(resource)
