"""Where the local stack (`cvloop up`) listens: loopback ports counted from one base, CVLOOP_PORT_BASE.

The services' settings and the SDK's default URLs both derive their addresses from it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated

from pydantic import Field

LOCAL_HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 54320

PortBase = Annotated[int, Field(ge=1024, le=65500)]


class PortOffset(IntEnum):
    """A component's port minus the port base."""

    POSTGRES = 0
    S3 = 1
    TRITON_HTTP = 2
    TRITON_GRPC = 3
    TRITON_METRICS = 4
    SERVING = 5
    INGEST = 6
    API = 7
    SCORING = 8
    PIPELINE = 9
    JOB_RUNNER = 10


def local_url(port_base: int, offset: PortOffset) -> str:
    """The base URL of a local-stack HTTP component."""
    return f"http://{LOCAL_HOST}:{port_base + offset}"
