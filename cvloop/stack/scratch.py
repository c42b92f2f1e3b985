"""A throwaway local stack, as the tests and the benches start one: its own state folder, a free block of
loopback ports, and the checkout's tools folder shared across runs (tritonserver is large and read-only)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from schemas.local_stack import LOCAL_HOST, PORTS_PER_STACK, S3_ADMIN_GRPC_SHIFT, stack_ports

from .process import port_bindable
from .settings import StackSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
# Scratch stacks' bases: above the default stack's block, and low enough that every port (the S3 admin's
# gRPC port lies S3_ADMIN_GRPC_SHIFT above its block) stays below the ephemeral range (32768-60999), so
# client sockets do not take a port between the check and the start.
SCRATCH_BASES = range(16000, 32768 - S3_ADMIN_GRPC_SHIFT - PORTS_PER_STACK, PORTS_PER_STACK)


def tools_dir() -> Path:
    """Where the binaries live: CVLOOP_TOOLS_DIR, else the checkout's .cvloop/tools."""
    return Path(os.environ.get("CVLOOP_TOOLS_DIR") or REPO_ROOT / ".cvloop" / "tools")


def free_port_base(after: int | None = None) -> int:
    """A base whose every port is bindable, even without SO_REUSEADDR (no connection of an earlier stack
    lingers there, so a test may squat one of its ports); a random
    start keeps two stacks on one machine from picking the same block. `after`: a base above that one."""
    candidates = [base for base in SCRATCH_BASES if after is None or base > after]
    start = random.randrange(len(candidates)) if after is None else 0
    for base in candidates[start:] + candidates[:start]:
        if all(port_bindable(LOCAL_HOST, port, reuse_address=False) for port in stack_ports(base)):
            return base
    raise RuntimeError("no free block of loopback ports for the stack")


def scratch_settings(state_dir: Path) -> StackSettings:
    """A stack's settings with its state in `state_dir`, on free ports, with the shared tools."""
    return StackSettings(state_dir=state_dir, tools_dir_setting=tools_dir(), port_base=free_port_base())
