"""The local S3 server (SeaweedFS) as `cvloop up` runs it, in a state folder and ports of its own: it keeps
objects across a stop and a `kill -9`, and listens on loopback only, on the ports the stack declares."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvloop.stack.process import http_status, is_alive, running_pid, spawn, wait_until
from cvloop.stack.s3 import S3Server
from cvloop.stack.scratch import free_port_base, tools_dir
from cvloop.stack.settings import StackSettings
from schemas.local_stack import LOCAL_HOST
from services.common.storage import ObjectKind, ObjectStore

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


@pytest.fixture
def server(tmp_path: Path) -> Iterator[S3Server]:
    settings = StackSettings(
        state_dir=tmp_path / "state", tools_dir_setting=tools_dir(), port_base=free_port_base()
    )
    server = S3Server(settings)
    server.start()
    yield server
    server.stop()


def _store(server: S3Server) -> ObjectStore:
    store = ObjectStore.from_settings(server.settings)
    store.ensure_bucket()
    return store


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and inode in inodes:
                address, port = local.split(":")
                found.add((_address(address), int(port, 16)))
    return found


def _address(hexed: str) -> str:
    if len(hexed) == 8:  # IPv4, little-endian
        return ".".join(str(int(hexed[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return hexed  # IPv6: never loopback-v4, which is what the test asks for


def test_it_listens_on_loopback_on_the_declared_ports_only(server: S3Server) -> None:
    pid = running_pid(server.workdir)
    assert pid is not None
    declared = {(LOCAL_HOST, port) for port in server.ports}
    # Its admin server opens its HTTP port a moment after the S3 gateway answers.
    wait_until(lambda: _listening(pid) == declared, 10.0)
    assert _listening(pid) == declared


def test_objects_survive_a_stop_and_a_kill(server: S3Server, tmp_path: Path) -> None:
    store = _store(server)
    model = tmp_path / "model.onnx"
    model.write_bytes(os.urandom(6 * 1024 * 1024))  # larger than one filer chunk (4 MB)
    images = {os.urandom(5000) for _ in range(20)}
    kept = {store.put_bytes(ObjectKind.IMAGES, data, "image/png").key: data for data in images}
    kept[store.put_file(ObjectKind.MODELS, model, "application/onnx").key] = model.read_bytes()

    server.stop()
    assert server.health().state == "stopped"
    server.start()
    assert {key: store.get_bytes(key) for key in kept} == kept
    late = os.urandom(3000)
    kept[store.put_bytes(ObjectKind.REFERENCES, late, "application/octet-stream").key] = late

    pid = running_pid(server.workdir)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: server.health().state == "stopped", 10.0)
    server.start()  # what `cvloop up --only s3` does after the crash
    assert server.health().state == "healthy"
    assert {key: store.get_bytes(key) for key in kept} == kept


def test_a_stack_started_with_moto_starts_seaweedfs(tmp_path: Path) -> None:
    """Upgrade: the S3 component of a stack started before SeaweedFS is moto's server (in memory)."""
    settings = StackSettings(
        state_dir=tmp_path / "state", tools_dir_setting=tools_dir(), port_base=free_port_base()
    )
    server = S3Server(settings)
    argv = [sys.executable, "-m", "moto.server", "-H", LOCAL_HOST, "-p", str(settings.s3_port)]
    old = spawn(argv, workdir=server.workdir)
    assert wait_until(lambda: http_status(f"{settings.s3_endpoint}/moto-api/") is not None, 30.0)
    assert server.health().state == "unhealthy"  # not SeaweedFS: it answers anyone
    try:
        server.start()
        assert server.health().state == "healthy"
        assert running_pid(server.workdir) != old
        assert wait_until(lambda: not is_alive(old), 5.0)
    finally:
        server.stop()
