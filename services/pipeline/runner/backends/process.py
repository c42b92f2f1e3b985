"""One command as a subprocess: its stdout and stderr lines streamed to the run's log as they come, a time
limit, and the whole process group stopped (SIGTERM, then SIGKILL) when it is exceeded or the run is
cancelled; when the command ends, whatever it left running in its group is killed. It inherits no file
descriptor of the runner's but its pipes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from . import Exit, Log, process_exit

LINE_LIMIT = 1 << 20  # a longer line is cut into pieces
STOP_GRACE_S = 5.0  # between SIGTERM and SIGKILL
DRAIN_S = 5.0  # how long the pipes may stay open after the command exited (a child it left behind)


async def _pump(stream: asyncio.StreamReader, log: Log, last: list[str] | None) -> None:
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # longer than LINE_LIMIT: what was read is dropped, the rest goes on
            continue
        if not line:
            return
        text = line.decode(errors="replace").rstrip("\r\n")
        log(text)
        if last is not None and text.strip():
            last[:] = [text.strip()]


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


class _Streams(asyncio.subprocess.SubprocessStreamProtocol):
    """The command's pipes, and `exited` set when the command itself exited: `Process.wait()` also waits
    for its pipes to close, which a child holding them (a daemon of its own session) would delay until
    it ends."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


async def _start(
    argv: Sequence[str], cwd: Path, env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, _Streams]:
    loop = asyncio.get_running_loop()
    transport, streams = await loop.subprocess_exec(
        lambda: _Streams(LINE_LIMIT, loop),
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group, stopped as a whole
        close_fds=True,  # nothing of the runner's: its listening socket stays with it
        pass_fds=(),
    )
    return asyncio.subprocess.Process(transport, streams, loop), streams


async def _stop(process: asyncio.subprocess.Process, exited: asyncio.Event) -> None:
    _signal_group(process, signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_GRACE_S):
            await exited.wait()
    except TimeoutError:
        _signal_group(process, signal.SIGKILL)
        await exited.wait()


def _end(process: asyncio.subprocess.Process, ended: Callable[[], object]) -> None:
    _signal_group(process, signal.SIGKILL)  # what the command started and left in its group
    ended()


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    log: Log,
    started: Callable[[int], None] = lambda _: None,
    ended: Callable[[], object] = lambda: None,
) -> Exit:
    """`started` gets the process group's id as soon as it exists (the runner records it, so that a
    runner restarted after a crash can stop what its predecessor left running); `ended` is called once
    the command exited or was stopped, its process group killed, before its output is drained (the
    runner kills there what left the group)."""
    try:
        process, streams = await _start(argv, cwd, env)
    except OSError as exc:
        return Exit(False, f"cannot start {argv[0]!r}: {exc.strerror or exc}")
    started(process.pid)
    assert process.stdout is not None and process.stderr is not None
    last_stderr: list[str] = []
    pumps = asyncio.gather(_pump(process.stdout, log, None), _pump(process.stderr, log, last_stderr))
    timed_out = False
    try:
        async with asyncio.timeout(timeout_s):
            await streams.exited.wait()
    except TimeoutError:
        timed_out = True
        await _stop(process, streams.exited)
    except asyncio.CancelledError:
        await _stop(process, streams.exited)
        _end(process, ended)
        pumps.cancel()
        raise
    _end(process, ended)
    try:
        async with asyncio.timeout(DRAIN_S):
            await pumps
    except TimeoutError:
        pumps.cancel()
    assert process.returncode is not None
    return process_exit(
        process.returncode,
        timed_out=timed_out,
        timeout_s=timeout_s,
        last_stderr=last_stderr[0] if last_stderr else None,
    )
