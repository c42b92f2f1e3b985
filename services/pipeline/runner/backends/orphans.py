"""What a run leaves running: the processes that carry its id in their environment (CVLOOP_RUN_ID, which
the runner gives every command and its children inherit), even those that left its process group with a
session of their own, are killed when the run ends (`kill_run`).

What a runner that died (kill -9, a crash) left behind on this machine: each local run in progress has a
marker, JOBS_WORK_DIR/<run id>.pgid, written before its stage-in and holding its command's process group
once started. A restarted runner kills that group if its processes still carry the run's id (a process
group id reused since by something else is left alone) and every other process carrying it, removes the
workspace and the marker; the run itself is failed by the service (a subprocess cannot be adopted: its
output pipes died with the runner)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from pathlib import Path
from uuid import UUID

from schemas.job_workspace import RUN_ID_ENV

logger = logging.getLogger(__name__)

SUFFIX = ".pgid"
PROC = Path("/proc")


def marker(work_dir: Path, run_id: UUID) -> Path:
    return work_dir / f"{run_id}{SUFFIX}"


def record(work_dir: Path, run_id: UUID, pgid: int | None = None) -> None:
    marker(work_dir, run_id).write_text("" if pgid is None else str(pgid))


def clear(work_dir: Path, run_id: UUID) -> None:
    marker(work_dir, run_id).unlink(missing_ok=True)


def _processes() -> list[tuple[int, int, str]]:
    """(pid, process group, state) of every process."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        found.append((int(entry.name), int(fields[2]), fields[0]))
    return found


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (not the zombies, ended and not yet reaped)."""
    return [pid for pid, group, state in _processes() if group == pgid and state != "Z"]


def _carries_run(pid: int, run_id: UUID) -> bool:
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return f"{RUN_ID_ENV}={run_id}".encode() in environ.split(b"\0")


def kill_run(run_id: UUID, pgid: int | None = None) -> int:
    """SIGKILL the process group `pgid` if it still runs run `run_id`, and every process carrying the
    run's id; answers how many processes carried it."""
    if pgid is not None and any(_carries_run(pid, run_id) for pid in group_members(pgid)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    carrying = [pid for pid, _, state in _processes() if state != "Z" and _carries_run(pid, run_id)]
    for pid in carrying:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(carrying)


def reap(work_dir: Path) -> list[UUID]:
    """Kill what the runs left in progress still run, remove their workspaces and markers; answers the
    runs it found."""
    found = []
    for path in sorted(work_dir.glob(f"*{SUFFIX}")) if work_dir.is_dir() else []:
        try:
            run_id = UUID(path.name.removesuffix(SUFFIX))
        except ValueError:
            continue
        content = path.read_text().strip()
        killed = kill_run(run_id, int(content) if content.isdigit() else None)
        shutil.rmtree(work_dir / str(run_id), ignore_errors=True)
        path.unlink(missing_ok=True)
        logger.warning(
            "cleaned up a run a stopped runner left", extra={"run_id": str(run_id), "killed": killed}
        )
        found.append(run_id)
    return found
