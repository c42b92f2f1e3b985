"""The local stack's process records against real processes: a crashed component is seen as stopped (a
zombie, a reused pid), what its crash left of its process group is cleared, ports are checked bindable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from cvloop.stack.process import (
    StackError,
    clear_dead,
    ensure_ports_free,
    is_alive,
    port_bindable,
    read_pid,
    running_pid,
    spawn,
    start_time,
    wait_until,
)
from schemas.local_stack import LOCAL_HOST


def test_a_killed_process_is_not_running(tmp_path: Path) -> None:
    pid = spawn(["sleep", "300"], workdir=tmp_path)
    assert running_pid(tmp_path) == pid
    os.kill(pid, signal.SIGKILL)  # a zombie of this process until someone reaps it
    assert wait_until(lambda: running_pid(tmp_path) is None, 5.0)


def test_a_reused_pid_is_not_the_recorded_process(tmp_path: Path) -> None:
    started = start_time(os.getpid())
    assert started is not None
    (tmp_path / "pid").write_text(f"{os.getpid()} {started + 1}")  # another process, same pid
    assert running_pid(tmp_path) is None
    (tmp_path / "pid").write_text(f"{os.getpid()} {started}")
    assert running_pid(tmp_path) == os.getpid()
    (tmp_path / "pid").write_text(str(os.getpid()))  # a pid file from before start times were kept
    assert read_pid(tmp_path) == (os.getpid(), None)
    assert running_pid(tmp_path) == os.getpid()


def test_what_a_crash_left_of_the_group_is_cleared(tmp_path: Path) -> None:
    # The leader starts a child in its group (as tritonserver starts its python stubs), then is killed.
    leader = spawn(["sh", "-c", "sleep 300 & echo $! > child; wait"], workdir=tmp_path)
    assert wait_until(lambda: (tmp_path / "child").exists() and (tmp_path / "child").read_text(), 5.0)
    child = int((tmp_path / "child").read_text())
    os.kill(leader, signal.SIGKILL)
    assert wait_until(lambda: running_pid(tmp_path) is None, 5.0)
    assert is_alive(child)  # still holding whatever it held
    clear_dead(tmp_path)
    assert wait_until(lambda: not is_alive(child), 5.0)
    assert not (tmp_path / "pid").exists()


def test_clearing_leaves_a_live_process_alone(tmp_path: Path) -> None:
    pid = spawn(["sleep", "300"], workdir=tmp_path)
    try:
        clear_dead(tmp_path)
        assert running_pid(tmp_path) == pid
    finally:
        os.killpg(pid, signal.SIGKILL)


def test_a_port_held_by_a_client_socket_is_not_bindable() -> None:
    with socket.socket() as server:
        server.bind((LOCAL_HOST, 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            held = client.getsockname()[1]  # the client's own local port, no listener there
            assert not port_bindable(LOCAL_HOST, held)
            assert not port_bindable(LOCAL_HOST, server.getsockname()[1])  # listened on
    with socket.socket() as free:
        free.bind((LOCAL_HOST, 0))
        port = free.getsockname()[1]
    assert port_bindable(LOCAL_HOST, port)


def test_a_taken_port_names_the_fix() -> None:
    with socket.socket() as squatter:
        squatter.bind((LOCAL_HOST, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {LOCAL_HOST}:{port} is already taken.*CVLOOP_PORT_BASE"):
            ensure_ports_free(LOCAL_HOST, [port], "s3")


def test_start_time_of_a_finished_process_is_none() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert start_time(proc.pid) is None
