"""promtool, which scripts/test.sh unpacks from Debian's prometheus package into the tools folder (or one
already on PATH): the suite checks the rules and every service's /metrics with it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from cvloop.stack.scratch import tools_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"


def promtool_path() -> Path:
    unpacked = tools_dir() / "prometheus" / "usr" / "bin" / "promtool"
    if unpacked.is_file():
        return unpacked
    on_path = shutil.which("promtool")
    if on_path is None:
        pytest.fail(f"promtool is neither at {unpacked} nor on PATH: run the suite with scripts/test.sh")
    return Path(on_path)


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> CompletedProcess[str]:
    """promtool's answer; its stdout (with stderr) says what failed."""
    return subprocess.run(
        [str(promtool_path()), *args],
        input=stdin,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
