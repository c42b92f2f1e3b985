"""The images in deploy/docker/, read as text (no Docker engine here builds them): one base image with
the cvloop package, run as a non-root user, per service an image whose command is the one its
Kubernetes Deployment runs, and the job images (the PyTorch trainers' torch image)."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

from cvloop.trainers.detection_data import detector_training
from schemas.job_workspace import TORCH_TRAINER_IMAGE
from services.pipeline.runner.commands import image_name
from tests.k8s import PACKAGES, render_documents
from tests.k8s_model import SERVICE_MODULES, by_name

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
JOB_IMAGES = {"trainer-torch"}  # images of jobs, not of services


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in instructions(dockerfile):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_there_is_a_dockerfile_per_service_image_and_no_other() -> None:
    names = {path.name.removesuffix(".Dockerfile") for path in DOCKER.glob("*.Dockerfile")}
    assert names == {"base", *SERVICE_MODULES, *JOB_IMAGES}


def test_each_service_image_runs_what_its_deployment_runs() -> None:
    deployments = by_name(render_documents(PACKAGES["base"]), "Deployment")
    for component, module in SERVICE_MODULES.items():
        steps = instructions(DOCKER / f"{component}.Dockerfile")
        (arg,) = [a for i, a in steps if i == "ARG"]
        (base,) = [a for i, a in steps if i == "FROM"]
        assert arg.startswith("CVLOOP_IMAGE=cvloop:") and base == "${CVLOOP_IMAGE}", component
        (command,) = [json.loads(a) for i, a in steps if i == "CMD"]
        (container,) = deployments[f"cvloop-{component}"]["spec"]["template"]["spec"]["containers"]
        assert command == container["command"] == ["python", "-m", module], component
        assert not [a for i, a in steps if i == "USER"], component  # keeps the base's non-root user


def test_the_base_image_runs_as_the_non_root_user_the_pods_expect() -> None:
    final = _stages(DOCKER / "base.Dockerfile")[-1]
    (user,) = [a for i, a in final if i == "USER"]
    uid, gid = (int(part) for part in user.split(":"))
    assert uid != 0 and gid != 0
    deployments = by_name(render_documents(PACKAGES["base"]), "Deployment")
    for component in SERVICE_MODULES:
        security = deployments[f"cvloop-{component}"]["spec"]["template"]["spec"]["securityContext"]
        assert (security["runAsUser"], security["runAsGroup"]) == (uid, gid), component
    env = " ".join(a for i, a in final if i == "ENV")
    assert "CVLOOP_BIND_HOST=0.0.0.0" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    (exposed,) = [a for i, a in final if i == "EXPOSE"]
    assert f"CVLOOP_HTTP_PORT={exposed}" in env


def test_the_base_image_installs_every_package_with_its_data() -> None:
    """What the build copies is what pyproject packages, and every non-Python file in it is package data
    (a template or migration left out of package-data would be missing from the image)."""
    build = _stages(DOCKER / "base.Dockerfile")[0]
    copied = {a.split()[0] for i, a in build if i == "COPY"}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied
    ignored = (DOCKER / "base.Dockerfile.dockerignore").read_text().splitlines()
    assert {f"!{p}/" for p in packages} <= set(ignored)
    package_data = project["tool"]["setuptools"]["package-data"]
    for package in packages:
        for path in (REPO / package).rglob("*"):
            if path.is_dir() or path.suffix in {".py", ".pyc"} or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(REPO)
            owners = [
                (name, patterns)
                for name, patterns in package_data.items()
                if relative.parts[: len(name.split("."))] == tuple(name.split("."))
            ]
            assert any(
                fnmatch.fnmatch(str(relative.relative_to(Path(*name.split(".")))), pattern)
                for name, patterns in owners
                for pattern in patterns
            ), f"{relative} is not package data: the image would not have it"


def test_the_torch_trainer_image_is_the_cvloop_image_with_the_torch_environments_requirements() -> None:
    """What a detector version names as its training image (build.sh tags it cvloop-<name>) is this
    Dockerfile's: the cvloop image plus both torch requirement files, copied from the repository root
    (its own .dockerignore lets only them in), still run as the base's non-root user."""
    entrypoint, image = detector_training("0.1.0")
    assert image_name(image) == TORCH_TRAINER_IMAGE == "cvloop-trainer-torch" and image.endswith(":0.1.0")
    assert entrypoint.split()[0] == "python"  # the image's Python, which the local backend stands in for
    dockerfile = DOCKER / "trainer-torch.Dockerfile"
    steps = instructions(dockerfile)
    assert [a for i, a in steps if i == "FROM"] == ["${CVLOOP_IMAGE}"]
    requirements = ["scripts/torch-requirements.txt", "scripts/torch-job-requirements.txt"]
    (copied,) = [a.split() for i, a in steps if i == "COPY"]
    assert copied[:-1] == requirements and all((REPO / r).is_file() for r in requirements)
    (run,) = [a for i, a in steps if i == "RUN"]
    assert all(f"-r {copied[-1]}{Path(r).name}" in run for r in requirements)
    users = [a for i, a in steps if i == "USER"]
    (base_user,) = [a for i, a in _stages(DOCKER / "base.Dockerfile")[-1] if i == "USER"]
    assert users[-1] == base_user
    ignored = (DOCKER / "trainer-torch.Dockerfile.dockerignore").read_text().splitlines()
    assert {f"!{r}" for r in requirements} <= set(ignored) and "*" in ignored
    (command,) = [json.loads(a) for i, a in steps if i == "CMD"]
    assert command == entrypoint.split()
