"""The local S3 server: SeaweedFS (`weed mini`, on disk, what `cvloop up` runs) against moto's server (in
memory, the stand-in it replaced), both started here as the stack starts them, on free ports.

For each: seconds from start to its first healthy probe, resident memory idle and after the run, and
objects/s for PUT then GET of N 5 KB objects (distinct random bytes, as images are) through the platform's
own ObjectStore on one thread. Printed as SeaweedFS's figures against moto's (the baseline).

    .venv/bin/python -m bench.storage [--objects 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from cvloop.stack.process import http_status, running_pid, spawn, terminate, wait_until
from cvloop.stack.s3 import S3Server
from cvloop.stack.scratch import free_port_base, tools_dir
from cvloop.stack.settings import StackSettings
from schemas.local_stack import LOCAL_HOST
from services.common.storage import ObjectKind, ObjectStore

OBJECT_BYTES = 5 * 1024


class Figures(NamedTuple):
    start_s: float
    idle_rss_mib: float
    put_per_s: float
    get_per_s: float
    loaded_rss_mib: float


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def run_objects(settings: StackSettings, pid: int, started_s: float, objects: int) -> Figures:
    idle = rss_mib(pid)
    store = ObjectStore.from_settings(settings)
    store.ensure_bucket()
    payloads = [os.urandom(OBJECT_BYTES) for _ in range(objects)]
    began = time.perf_counter()
    keys = [store.put_bytes(ObjectKind.IMAGES, data, "image/png").key for data in payloads]
    put_s = time.perf_counter() - began
    began = time.perf_counter()
    for key in keys:
        store.get_bytes(key)
    get_s = time.perf_counter() - began
    return Figures(started_s, idle, objects / put_s, objects / get_s, rss_mib(pid))


def seaweedfs(state: Path, objects: int) -> Figures:
    settings = StackSettings(state_dir=state, tools_dir_setting=tools_dir(), port_base=free_port_base())
    server = S3Server(settings)
    began = time.perf_counter()
    server.start()
    started_s = time.perf_counter() - began
    try:
        pid = running_pid(server.workdir)
        assert pid is not None
        return run_objects(settings, pid, started_s, objects)
    finally:
        server.stop()


def moto(state: Path, objects: int) -> Figures:
    settings = StackSettings(state_dir=state, tools_dir_setting=tools_dir(), port_base=free_port_base())
    workdir = state / "moto"
    began = time.perf_counter()
    pid = spawn(
        [sys.executable, "-m", "moto.server", "-H", LOCAL_HOST, "-p", str(settings.s3_port)],
        workdir=workdir,
    )
    # moto answers its own dashboard API once it serves.
    if not wait_until(lambda: http_status(f"{settings.s3_endpoint}/moto-api/") is not None, 30.0):
        raise RuntimeError("moto's server did not start")
    started_s = time.perf_counter() - began
    try:
        return run_objects(settings, pid, started_s, objects)
    finally:
        terminate(workdir)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=1000, help="5 KB objects to PUT, then GET")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="cvloop-bench-storage-"))
    try:
        baseline = moto(state / "moto", args.objects)
        measured = seaweedfs(state / "seaweedfs", args.objects)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"{args.objects} objects of {OBJECT_BYTES} bytes, one thread, through ObjectStore")
    print(f"{'':24}{'moto (baseline)':>16}{'SeaweedFS':>12}{'ratio':>8}")
    for label, field in (
        ("start to healthy, s", "start_s"),
        ("RSS idle, MiB", "idle_rss_mib"),
        ("PUT objects/s", "put_per_s"),
        ("GET objects/s", "get_per_s"),
        ("RSS after the run, MiB", "loaded_rss_mib"),
    ):
        base, value = getattr(baseline, field), getattr(measured, field)
        print(f"{label:24}{base:16.1f}{value:12.1f}{value / base:8.2f}")


if __name__ == "__main__":
    main()
