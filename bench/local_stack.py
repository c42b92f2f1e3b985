"""The local stack a bench runs on: its components on free ports in a temporary state folder, with
tritonserver from the tools folder (CVLOOP_TOOLS_DIR, else the checkout's .cvloop/tools)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cvloop.stack import stack
from services.common.settings import Settings
from tests.conftest import free_port_base
from tests.promtool import tools_dir


@contextmanager
def local_stack(name: str, components: list[str], **overrides: Any) -> Iterator[Settings]:
    """The components started (each one's state printed) with the settings `overrides` change; stopped
    and their state folder removed afterwards."""
    state = Path(tempfile.mkdtemp(prefix=f"cvloop-bench-{name}-"))
    settings = Settings(state_dir=state, tools_dir_setting=tools_dir(), port_base=free_port_base())
    settings = settings.model_copy(update=overrides)
    try:
        for health in stack.up(settings, components):
            print(f"{health.name:<12} {health.state}", flush=True)
            if not health.ok:
                raise SystemExit(f"{health.name} is {health.state}: {health.detail}")
        yield settings
    finally:
        for _ in stack.down(settings, components):
            pass
        shutil.rmtree(state, ignore_errors=True)
