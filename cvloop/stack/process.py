"""Detached processes of the local stack: start one, find it again from its pid file, stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class StackError(RuntimeError):
    """A component could not be installed or started; the message names the fix."""


def spawn(argv: Sequence[str], *, workdir: Path, env: Mapping[str, str] | None = None) -> int:
    """Start argv in its own session (it outlives the CLI), log to workdir/log, record workdir/pid."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "log", "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=workdir,
            start_new_session=True,
        )
    (workdir / "pid").write_text(str(proc.pid))
    return proc.pid


def read_pid(workdir: Path) -> int | None:
    try:
        return int((workdir / "pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def running_pid(workdir: Path) -> int | None:
    pid = read_pid(workdir)
    return pid if pid is not None and is_alive(pid) else None


def terminate(workdir: Path, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signal the recorded process group, SIGKILL it after timeout, forget the pid."""
    pid = running_pid(workdir)
    if pid is not None:
        _signal_group(pid, sig)
        if not wait_until(lambda: not is_alive(pid), timeout):
            _signal_group(pid, signal.SIGKILL)
            wait_until(lambda: not is_alive(pid), 5.0)
    (workdir / "pid").unlink(missing_ok=True)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status a GET of `url` answers, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # URLError included: refused, reset, timed out
        return None


def ensure_port_free(host: str, port: int, component: str) -> None:
    if port_open(host, port):
        raise StackError(
            f"{component}: port {host}:{port} is already taken by another program; stop it, or move the "
            "local stack with CVLOOP_PORT_BASE=<another port>"
        )


def log_tail(workdir: Path, lines: int = 20) -> str:
    try:
        return "\n".join((workdir / "log").read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
