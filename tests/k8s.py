"""Rendering the Kubernetes manifests offline with `kubectl kustomize`, for the manifest tests."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
# What an operator applies: the base and both overlays.
PACKAGES = {"base": K8S / "base", "local": K8S / "overlays" / "local", "gpu": K8S / "overlays" / "gpu"}


@cache
def _kustomize(folder: Path) -> str:
    return subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def render_text(folder: Path) -> str:
    """`kubectl kustomize folder`'s output; skips without kubectl."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    return _kustomize(folder)


def render_documents(folder: Path) -> list[dict[str, Any]]:
    """The documents kustomize renders from `folder`, in order; skips without kubectl or PyYAML."""
    yaml = pytest.importorskip("yaml")
    return [doc for doc in yaml.safe_load_all(render_text(folder)) if doc]


def render(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The documents kustomize renders from `folder`, by (kind, name)."""
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in render_documents(folder)}
