"""A throwaway local stack, as the tests and the benches start one: its own state folder, a free block of
loopback ports, and the checkout's tools folder shared across runs (tritonserver is large and read-only)."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

from schemas.local_stack import LOCAL_HOST, PortOffset

from .process import port_open
from .settings import StackSettings

PORTS_PER_STACK = len(PortOffset)
REPO_ROOT = Path(__file__).resolve().parents[2]


def tools_dir() -> Path:
    """Where the binaries live: CVLOOP_TOOLS_DIR, else the checkout's .cvloop/tools."""
    return Path(os.environ.get("CVLOOP_TOOLS_DIR") or REPO_ROOT / ".cvloop" / "tools")


def _bindable(port: int) -> bool:
    """Nothing listens there, and no connection (one in TIME_WAIT included) holds it as its local port:
    servers that bind without SO_REUSEADDR, like tritonserver's HTTP endpoint, fail on those."""
    if port_open(LOCAL_HOST, port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOCAL_HOST, port))
        except OSError:
            return False
    return True


def free_port_base(start: int | None = None) -> int:
    # A random start keeps two stacks on one machine from picking the same block; below the ephemeral
    # range (32768-60999), so client sockets do not take a port between the check and the start.
    start = start or 20320 + PORTS_PER_STACK * random.randrange(1000)
    for base in range(start, start + 2000, PORTS_PER_STACK):
        if all(_bindable(base + i) for i in range(PORTS_PER_STACK)):
            return base
    raise RuntimeError("no free block of loopback ports for the stack")


def scratch_settings(state_dir: Path) -> StackSettings:
    """A stack's settings with its state in `state_dir`, on free ports, with the shared tools."""
    return StackSettings(state_dir=state_dir, tools_dir_setting=tools_dir(), port_base=free_port_base())
