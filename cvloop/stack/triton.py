"""The local Triton server: the `tritonserver` binary shipped in the nvidia-pytriton wheel, run standalone.

The wheel pins numpy<2, so it is never installed into the app's environment: `install()` unpacks it
apart, under <tools>/triton/, and keeps only the server layout (bin, backends, caches and the wheel's
bundled libraries) plus a small venv in which the python backend's stubs run. Locally only the python
backend exists; ONNX models run through onnxruntime inside a python-backend `model.py`. TRITON_URL points
the platform at a full Triton instead.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from collections.abc import Mapping
from pathlib import Path

from schemas.local_stack import LOCAL_HOST
from services.common.settings import Settings

from .component import Component
from .process import StackError, http_status, spawn

logger = logging.getLogger(__name__)

WHEEL = "nvidia-pytriton==0.7.0"
STUB = "triton_python_backend_stub"
LIBS = "nvidia_pytriton.libs"
# The venv the stubs run in. The stub of tritonserver 2.51 exchanges tensors with numpy 1's ABI: under
# numpy 2 every output tensor arrives empty ("output tensor shape does not match size"), so the stubs
# cannot share the app's numpy 2 environment. What models import (onnxruntime) is added here.
STUB_ENV = "python"
# onnxruntime runs ONNX models inside the python backend locally (the wheel has no onnxruntime backend).
STUB_PACKAGES = ("numpy==1.26.4", "onnxruntime==1.31.1")
# What the layout was built from; a layout built for another Python or other packages is rebuilt.
LAYOUT_FILE = "layout"
# The wheel's tritonserver is built for CUDA; locally it runs CPU models only.
CPU_ONLY_FLAGS = ("--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0")


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def layout_id() -> str:
    return " ".join((WHEEL, f"python{python_version()}", *STUB_PACKAGES))


def stub_library_path() -> Path:
    """The running interpreter's libpython folder, which the python backend stub must load.

    Without it on LD_LIBRARY_PATH the stub loads the system libpython, whose ABI differs from this
    interpreter's standard library (it fails with `_recursion_count`).
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    soname = sysconfig.get_config_var("INSTSONAME")
    if not libdir or not soname or not (Path(libdir) / soname).exists():
        raise StackError(
            f"triton: the python backend needs this interpreter's shared libpython ({soname}) in {libdir}, "
            "and there is none; run cvloop with a Python built with --enable-shared "
            "(pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install ...)"
        )
    return Path(libdir)


def server_env(home: Path, inherited: Mapping[str, str]) -> dict[str, str]:
    """What tritonserver and its python backend stubs need to find their libraries and numpy."""
    library_path = [str(stub_library_path()), str(home / LIBS)]
    if inherited.get("LD_LIBRARY_PATH"):
        library_path.append(inherited["LD_LIBRARY_PATH"])
    # The stub embeds Python with an isolated config, so PYTHONPATH is ignored; the embedded interpreter
    # finds its prefix from the first `python3` on PATH instead. With the stub venv's bin folder first,
    # the stubs run in that venv and import its packages.
    path = [str(home / STUB_ENV / "bin"), inherited.get("PATH", os.defpath)]
    return {"LD_LIBRARY_PATH": os.pathsep.join(library_path), "PATH": os.pathsep.join(path)}


def server_argv(home: Path, model_repository: Path, settings: Settings) -> list[str]:
    return [
        str(home / "bin" / "tritonserver"),
        f"--model-repository={model_repository}",
        "--model-control-mode=explicit",
        f"--backend-directory={home / 'backends'}",
        f"--cache-directory={home / 'caches'}",
        "--allow-http=true",
        f"--http-address={LOCAL_HOST}",
        f"--http-port={settings.triton_http_port}",
        "--allow-grpc=true",
        f"--grpc-address={LOCAL_HOST}",
        f"--grpc-port={settings.triton_grpc_port}",
        "--allow-metrics=true",
        f"--metrics-address={LOCAL_HOST}",
        f"--metrics-port={settings.triton_metrics_port}",
        # A model that fails to load is reported per model; it must not mark the whole server unready.
        "--strict-readiness=false",
        # Below process.terminate's grace period, so `cvloop down` never needs SIGKILL.
        "--exit-timeout-secs=5",
        *CPU_ONLY_FLAGS,
    ]


def build_layout(unpacked: Path, layout: Path, version: str) -> None:
    """Move the server's folders out of the unpacked wheel and add the stub for Python `version`."""
    server = unpacked / "pytriton" / "tritonserver"
    stub = server / "python_backend_stubs" / version / STUB
    if not stub.is_file():
        available = sorted(p.name for p in (server / "python_backend_stubs").iterdir())
        raise StackError(
            f"triton: {WHEEL} has no python backend stub for Python {version} (it has {available}); "
            "run cvloop with one of those Python versions, or point TRITON_URL at a Triton server"
        )
    layout.mkdir()
    for folder in ("bin", "backends", "caches"):
        (server / folder).rename(layout / folder)
    (unpacked / LIBS).rename(layout / LIBS)
    stub.rename(layout / "backends" / "python" / STUB)


class TritonServer(Component):
    name = "triton"

    @property
    def address(self) -> str:
        return self.settings.triton_url

    @property
    def home(self) -> Path:
        """The installed server layout, shared by every state folder that uses the same tools folder."""
        return self.settings.tools_path / "triton"

    @property
    def model_repository(self) -> Path:
        return self.workdir / "models"

    def installed(self) -> bool:
        required = (
            self.home / "bin" / "tritonserver",
            self.home / "backends" / "python" / "libtriton_python.so",
            self.home / "backends" / "python" / STUB,
            self.home / LIBS,
            self.home / STUB_ENV / "bin" / "python3",
        )
        layout_file = self.home / LAYOUT_FILE
        return (
            all(path.exists() for path in required)
            and layout_file.exists()
            and layout_file.read_text() == layout_id()
        )

    def install(self) -> None:
        if self.installed():
            return
        stub_library_path()  # fail before downloading when the stub could never run here
        tools = self.settings.tools_path
        tools.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        # Staged next to the target (same file system) so that the final rename is atomic.
        with tempfile.TemporaryDirectory(dir=tools, prefix=".triton-") as staging:
            unpacked = Path(staging) / "wheel"
            print(f"triton: downloading {WHEEL} (about 55 MB) into {self.home}", file=sys.stderr, flush=True)
            pip("install", "--no-compile", "--no-deps", "--target", str(unpacked), WHEEL)
            layout = Path(staging) / "triton"
            build_layout(unpacked, layout, python_version())
            print(f"triton: installing {', '.join(STUB_PACKAGES)} for its python backend", file=sys.stderr)
            # Symlinks to this interpreter: the stub needs the same Python as the libpython it loads.
            venv.create(layout / STUB_ENV, symlinks=True)
            pip("--python", str(layout / STUB_ENV / "bin" / "python3"), "install", *STUB_PACKAGES)
            (layout / LAYOUT_FILE).write_text(layout_id())
            if self.installed():
                return  # another process finished an install meanwhile; a server may be using it
            if self.home.exists():  # broken, or built for another Python or packages
                self.home.rename(Path(staging) / "replaced")
            try:
                layout.rename(self.home)
            except OSError:
                # Another process installed it meanwhile; theirs is as good as ours.
                if not self.installed():
                    raise
        logger.info(
            "installed tritonserver",
            extra={"into": str(self.home), "seconds": round(time.monotonic() - started, 1)},
        )

    @property
    def ports(self) -> list[int]:
        return [
            self.settings.triton_http_port,
            self.settings.triton_grpc_port,
            self.settings.triton_metrics_port,
        ]

    def launch(self) -> None:
        if not self.installed():
            raise StackError(
                f"triton: no usable tritonserver in {self.home}; run `cvloop up`, which installs it there"
            )
        self.model_repository.mkdir(parents=True, exist_ok=True)
        spawn(
            server_argv(self.home, self.model_repository, self.settings),
            workdir=self.workdir,
            env=server_env(self.home, os.environ),
        )

    def probe(self) -> bool:
        return http_status(f"http://{self.address}/v2/health/ready") == 200


def pip(*args: str) -> None:
    """Run this interpreter's pip; its own progress goes to stderr, where `cvloop up` and pytest show it."""
    if importlib.util.find_spec("pip") is None:
        raise StackError(f"triton: pip is missing from {sys.executable}; run `{sys.executable} -m ensurepip`")
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(argv, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if result.returncode != 0:
        raise StackError(
            f"triton: `pip {' '.join(args)}` failed (exit {result.returncode}, output above); check access "
            "to PyPI (or PIP_INDEX_URL), or point TRITON_URL at a Triton server"
        )
