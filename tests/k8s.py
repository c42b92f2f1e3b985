"""Rendering the Kubernetes manifests offline with `kubectl kustomize`, for the manifest tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"


def render(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The documents kustomize renders from `folder`, by (kind, name); skips without kubectl or PyYAML."""
    yaml = pytest.importorskip("yaml")
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    output = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(output)}
