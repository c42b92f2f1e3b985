"""What a local job runs inside: none of the platform's credentials and as little of its reach as the
machine allows.

- its environment is built from nothing: PATH (the runner's Python first), PYTHONPATH (the platform's
  source checkout, for a job's Python of its own), HOME (its workspace), the
  locale and time zone, the job contract's variables, and the few settings of its own a command names
  (`JobCommand.passed_env`: the reference job's sample size); no DATABASE_URL, Kafka address, S3 key
  or API key reaches it;
- run by a root runner, it runs as JOBS_LOCAL_USER (`cvloop-job`, created when missing), without
  supplementary groups, in a workspace folder of its own (0700, its owner), so it can read no file of
  the platform's (the local Postgres's password, the demo's API key);
- when the machine lets the runner make one (`unshare`), it runs in a network namespace of its own with
  no interface up: it reaches no server at all (what it needs is staged in and out by the runner);
- a runner that is not root runs jobs as its own user: the environment and the network (through a user
  namespace) are still cut off, but a job can read the runner user's files.

Own process group, no inherited descriptors: `process.run_process`."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import schemas
from schemas.job_workspace import JobWorkspace
from services.common.os_users import as_user, ensure_system_user, grant_search, is_root

from ...settings import PipelineSettings
from ..commands import passed_env
from . import Launch

logger = logging.getLogger(__name__)

INHERITED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")  # harmless and what programs print with
JOB_PATH = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin:/usr/bin:/bin"])
# Any Python a job's command names (the torch environment's, say) imports the platform's job-side code
# from here: the workspace contract (schemas/) and the reference trainers (cvloop/trainers/). Only from a
# source checkout (an editable install): an installed platform's folder is site-packages, whose other
# packages would shadow that Python's own (there, install cvloop into the job's environment).
_PLATFORM_ROOT = Path(schemas.__file__).resolve().parent.parent
JOB_PYTHONPATH = None if _PLATFORM_ROOT.name in ("site-packages", "dist-packages") else str(_PLATFORM_ROOT)
WORK_DIR_MODE = 0o711  # others may walk to their own workspace but not list the others
WORKSPACE_MODE = 0o700


def _network_namespace(root: bool) -> list[str]:
    """The prefix running a command without network, or [] when this machine does not allow it (a
    container without CAP_SYS_ADMIN, user namespaces disabled)."""
    prefix = ["unshare", "--net", "--"] if root else ["unshare", "--user", "--net", "--"]
    try:
        probed = subprocess.run([*prefix, "true"], capture_output=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return prefix if probed.returncode == 0 else []


@dataclass(frozen=True)
class Sandbox:
    user: str | None  # None: the runner's own user
    network_prefix: tuple[str, ...]

    @classmethod
    def for_runner(cls, settings: PipelineSettings) -> Sandbox:
        root = is_root()
        user = ensure_system_user(settings.jobs_local_user).pw_name if root else None
        sandbox = cls(user, tuple(_network_namespace(root)))
        if user is None or not sandbox.network_prefix:
            logger.warning(
                "local jobs are less isolated",
                extra={"own_user": user is not None, "no_network": bool(sandbox.network_prefix)},
            )
        return sandbox

    def argv(self, argv: Sequence[str]) -> list[str]:
        """argv in the sandbox, its program found on the job's PATH by the runner (a Python started by a
        bare name as another user may not find its virtual environment)."""
        program = shutil.which(argv[0], path=JOB_PATH) or argv[0]
        command = [program, *argv[1:]]
        wrapped = as_user(self.user, command) if self.user else command
        return [*self.network_prefix, *wrapped]

    def make_work_dir(self, work_dir: Path) -> None:
        """JOBS_WORK_DIR, and the way to it and to the runner's Python for the job's user."""
        work_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            grant_search(work_dir)
            grant_search(Path(sys.executable).resolve())  # a Python under a 0700 home (pyenv, say)
            os.chmod(work_dir, WORK_DIR_MODE)

    def make_workspace(self, workspace: JobWorkspace) -> None:
        workspace.root.mkdir(mode=WORKSPACE_MODE)
        os.chmod(workspace.root, WORKSPACE_MODE)  # whatever the umask

    def hand_over(self, workspace: JobWorkspace) -> None:
        """Give the staged-in workspace to the job's user."""
        if self.user is None:
            return
        ids = pwd.getpwnam(self.user)
        for folder, _, files in os.walk(workspace.root):  # the runner wrote it: no links
            os.chown(folder, ids.pw_uid, ids.pw_gid)
            for name in files:
                os.chown(os.path.join(folder, name), ids.pw_uid, ids.pw_gid, follow_symlinks=False)

    def env(self, workspace: JobWorkspace, launch: Launch) -> dict[str, str]:
        """The command's whole environment (nothing else of the runner's)."""
        env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
        env |= passed_env(launch.command, os.environ)
        env["PATH"] = JOB_PATH
        if JOB_PYTHONPATH:
            env["PYTHONPATH"] = JOB_PYTHONPATH
        env["HOME"] = str(workspace.root)
        return env | workspace.job_env(launch.job.id, launch.run.id, launch.job.kind)
