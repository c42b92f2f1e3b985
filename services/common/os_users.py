"""Unprivileged OS users for what the platform runs but does not trust with its own rights: the local
Postgres server (Debian's `postgres`) and the local jobs (`cvloop-job`), both when the platform runs as
root. Helpers to create such a user, to let it walk to its folder, and to run a command as it."""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


def is_root() -> bool:
    return os.geteuid() == 0


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """The system user `name`, created (no home, no login shell, its own group) when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    created = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode not in (0, 9):  # 9: another process created it meanwhile
        raise RuntimeError(f"cannot create the system user {name!r}: {created.stderr.strip()}")
    logger.info("created a system user", extra={"user": name})
    return pwd.getpwnam(name)


def as_user(name: str, argv: Sequence[str], *, init_groups: bool = False) -> list[str]:
    """argv run as `name`; setpriv execs in place, so the process keeps its pid (and process group).
    Without `init_groups` it has no supplementary group at all."""
    groups = "--init-groups" if init_groups else "--clear-groups"
    return ["setpriv", f"--reuid={name}", f"--regid={name}", groups, "--", *argv]


def grant_search(path: Path) -> None:
    """Let other users walk through the parents of `path` to it (the search bit only: they cannot list
    or read anything in them). Temporary folders and a root home are often 0700."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)
            logger.warning("granted search permission to others", extra={"path": str(parent)})
