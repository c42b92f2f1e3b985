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
    # With its start time: after a crash and a reboot or a long uptime, another process may hold the pid.
    (workdir / "pid").write_text(f"{proc.pid} {start_time(proc.pid)}")
    return proc.pid


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None when no live process has the pid.

    A zombie (dead, not yet reaped by a parent that may never reap it) counts as gone once all its
    threads have exited: a killed multi-threaded server's first thread turns zombie while the others
    still close its sockets."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command) "
    if fields[0] in ("Z", "X") and threads <= 1:
        return None
    return int(fields[19])


def read_pid(workdir: Path) -> tuple[int, int | None] | None:
    """The recorded pid and start time (None in a pid file written before start times were kept)."""
    try:
        pid, _, started = (workdir / "pid").read_text().strip().partition(" ")
        return int(pid), int(started) if started else None
    except (FileNotFoundError, ValueError):
        return None


def is_alive(pid: int, started: int | None = None) -> bool:
    # A zombie child of this process: reap it, so the pid is not held for nothing.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def running_pid(workdir: Path) -> int | None:
    recorded = read_pid(workdir)
    return recorded[0] if recorded is not None and is_alive(*recorded) else None


def clear_dead(workdir: Path) -> None:
    """After a crash of the recorded process: kill what is left of its process group (a crashed
    tritonserver's python stubs, a crashed postmaster's backends hold ports and memory) and forget it."""
    recorded = read_pid(workdir)
    if recorded is None or is_alive(*recorded):
        return
    # The group id is the dead leader's pid, which Linux does not hand out while the group has members.
    _signal_group(recorded[0], signal.SIGKILL)
    (workdir / "pid").unlink(missing_ok=True)


def terminate(workdir: Path, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signal the recorded process group, SIGKILL it after timeout, forget the pid."""
    pid = running_pid(workdir)
    if pid is not None:
        _signal_group(pid, sig)
        if not wait_until(lambda: not is_alive(pid), timeout):
            _signal_group(pid, signal.SIGKILL)
            wait_until(lambda: not is_alive(pid), 5.0)
    clear_dead(workdir)


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


def port_bindable(host: str, port: int, *, reuse_address: bool = True) -> bool:
    """Nothing listens on the port and no other socket holds it as its local port. By default the probe
    binds with SO_REUSEADDR, as every server of the local stack does (tritonserver included, measured),
    so the closed connections a stopped server leaves in TIME_WAIT or FIN_WAIT do not count: a restart
    never waits for them. Without reuse_address they count too."""
    if port_open(host, port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if reuse_address:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def ensure_ports_free(host: str, ports: Sequence[int], component: str) -> None:
    """Every port the component will bind is bindable now."""
    taken = [port for port in ports if not port_bindable(host, port)]
    if taken:
        held = "; ".join(f"port {host}:{port} is already taken" for port in taken)
        raise StackError(
            f"{component}: {held} by another program; stop it, or move the local stack with "
            "CVLOOP_PORT_BASE=<another port>"
        )


def log_tail(workdir: Path, lines: int = 20) -> str:
    try:
        return "\n".join((workdir / "log").read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
