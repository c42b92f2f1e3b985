"""Where the local stack (`cvloop up`) listens: loopback ports counted from one base, CVLOOP_PORT_BASE.

The services' settings and the SDK's default URLs both derive their addresses from it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated

from pydantic import Field

LOCAL_HOST = "127.0.0.1"
# Below Linux's ephemeral range (32768-60999), with the S3 admin's gRPC port (below) too: client sockets
# never take one of the stack's ports between two starts.
DEFAULT_PORT_BASE = 14320

# SeaweedFS's maintenance worker dials its admin server's gRPC port at the admin port + 10000, whatever
# -admin.port.grpc says, so that one port lies apart from the block.
S3_ADMIN_GRPC_SHIFT = 10000


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
    # SeaweedFS's own servers behind the S3 gateway, each with its gRPC port.
    S3_GRPC = 11
    S3_MASTER = 12
    S3_MASTER_GRPC = 13
    S3_VOLUME = 14
    S3_VOLUME_GRPC = 15
    S3_FILER = 16
    S3_FILER_GRPC = 17
    S3_ADMIN = 18
    KAFKA = 19  # tansu, when it is the local broker (the mock picks a port of its own)


PORTS_PER_STACK = len(PortOffset)
PortBase = Annotated[int, Field(ge=1024, le=65535 - S3_ADMIN_GRPC_SHIFT - PORTS_PER_STACK)]


def s3_admin_grpc_port(port_base: int) -> int:
    return port_base + PortOffset.S3_ADMIN + S3_ADMIN_GRPC_SHIFT


def stack_ports(port_base: int) -> list[int]:
    """Every port the local stack listens on: the block from the base, and the S3 admin's gRPC port."""
    return [*(port_base + offset for offset in PortOffset), s3_admin_grpc_port(port_base)]


def local_url(port_base: int, offset: PortOffset) -> str:
    """The base URL of a local-stack HTTP component."""
    return f"http://{LOCAL_HOST}:{port_base + offset}"
