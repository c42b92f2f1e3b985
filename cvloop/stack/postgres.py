"""The local Postgres: Debian's server binaries, one cluster under <state dir>/postgres/data.

Run as root (containers, CI), the server runs as Debian's unprivileged `postgres` user instead,
because Postgres refuses to run as root.
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from schemas.local_stack import LOCAL_HOST
from services.common.os_users import as_user, grant_search, is_root
from services.common.settings import LOCAL_DATABASE, LOCAL_DATABASE_USER

from .component import Component
from .process import StackError, spawn, start_time

logger = logging.getLogger(__name__)

DATABASE = LOCAL_DATABASE
SUPERUSER = LOCAL_DATABASE_USER
SYSTEM_USER = "postgres"  # created by Debian's postgresql package
DEBIAN_VERSIONS = Path("/usr/lib/postgresql")
INSTALL_FIX = "apt-get install -y postgresql"

# Local development settings: quiet logs; fsync and friends off because this cluster is disposable
# (a power cut may corrupt it; production uses DATABASE_URL and a durable server).
SERVER_SETTINGS = {
    "listen_addresses": LOCAL_HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Clients get their own errors; the log keeps start, stop and crashes ("log" ranks above "error").
    "log_min_messages": "log",
    "log_checkpoints": "off",
}


# No trust and no peer: a job run as another OS user on this machine cannot get in without the password
# (<state dir>/postgres.password, readable by the platform's user only).
HBA_RULES = """\
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""
PASSWORD_BYTES = 24


def _ensure_password(path: Path) -> None:
    """The local superuser's password: made once, random, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made at an earlier start, or by a concurrent `cvloop up`
        return
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(PASSWORD_BYTES))


def find_bin_dir() -> Path | None:
    """Debian's newest versioned folder, else whatever `postgres` is on PATH."""
    versions = sorted(
        (p for p in DEBIAN_VERSIONS.glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    for bin_dir in reversed(versions):
        if (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file():
            return bin_dir
    on_path = shutil.which("postgres")
    return Path(on_path).resolve().parent if on_path else None


class Postgres(Component):
    name = "postgres"
    start_timeout = 30.0
    # Fast shutdown: SIGTERM's smart shutdown would wait for every client (a test's open pool) to leave.
    stop_signal = signal.SIGINT

    @property
    def address(self) -> str:
        return self.settings.database_url

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def _bin(self, tool: str) -> str:
        bin_dir = find_bin_dir()
        if bin_dir is None or not (bin_dir / tool).is_file():
            raise StackError(f"postgres: `{tool}` is not installed; run `{INSTALL_FIX}`")
        return str(bin_dir / tool)

    def install(self) -> None:
        for tool in ("initdb", "postgres", "psql"):
            self._bin(tool)
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise StackError(
                    f"postgres: running as root needs the `{SYSTEM_USER}` system user; run `{INSTALL_FIX}`"
                ) from None

    @property
    def ports(self) -> list[int]:
        return [self.settings.postgres_port]

    def launch(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _hand_over_to_system_user(self.workdir)
        if not self.data_dir.is_dir() or not any(self.data_dir.iterdir()):
            self._initdb()
        self._forget_dead_postmaster()
        argv = [self._bin("postgres"), "-D", str(self.data_dir), "-p", str(self.settings.postgres_port)]
        argv += ["-k", str(self.workdir)]  # unix socket beside the data, never in a shared /run folder
        for key, value in SERVER_SETTINGS.items():
            argv += ["-c", f"{key}={value}"]
        # In the foreground (no pg_ctl), so the recorded pid is the postmaster's.
        spawn(_as_server_user(argv), workdir=self.workdir)

    def _forget_dead_postmaster(self) -> None:
        """A killed postmaster leaves its lock files (the data folder's and the socket's); postgres takes
        a zombie not yet reaped (its parent, an exited `cvloop up`, left it to init) for a live server and
        refuses to start. Their pid is checked the way the stack checks its own: gone or a zombie, the
        lock file is stale."""
        for lock in (self.data_dir / "postmaster.pid", *self.workdir.glob(".s.PGSQL.*.lock")):
            try:
                pid = int(lock.read_text().split("\n", 1)[0])
            except (FileNotFoundError, ValueError):
                continue
            if start_time(pid) is None:
                lock.unlink(missing_ok=True)
                logger.info("removed a dead postmaster's lock file", extra={"lock": str(lock), "pid": pid})

    def _initdb(self) -> None:
        argv = [self._bin("initdb"), "-D", str(self.data_dir), "-U", SUPERUSER]
        argv += ["--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"]
        result = subprocess.run(_as_server_user(argv), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"postgres: initdb failed:\n{result.stdout}{result.stderr}")
        logger.info("postgres cluster initialised", extra={"data_dir": str(self.data_dir)})

    def start(self) -> None:
        if not self.external:
            _ensure_password(self.settings.local_database_password_file)
        super().start()
        if not self.external:
            self._ensure_database()
            self._require_password()

    def _psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess[str]:
        dsn = (
            f"host={LOCAL_HOST} port={self.settings.postgres_port} user={SUPERUSER} dbname={database} "
            "connect_timeout=2"
        )
        try:
            env = os.environ | {"PGPASSWORD": self.settings.local_database_password_file.read_text().strip()}
        except FileNotFoundError:  # a cluster started before passwords: still trust
            env = dict(os.environ)
        return subprocess.run(  # the SQL on stdin: a password in it stays out of `ps`
            [self._bin("psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", "-"],
            input=sql,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env=env,
        )

    def _require_password(self) -> None:
        """Every connection, over TCP or the socket, gives the superuser's password: a cluster made with
        trust (initdb, or before this rule) gets the password and the rules, then reloads them."""
        hba = self.data_dir / "pg_hba.conf"
        if hba.read_text() == HBA_RULES:
            return
        password = self.settings.local_database_password_file.read_text().strip()
        altered = self._psql(f"ALTER ROLE {SUPERUSER} PASSWORD '{password}'")
        if altered.returncode != 0:
            raise StackError(f"postgres: could not set the password: {altered.stderr.strip()}")
        hba.write_text(HBA_RULES)
        reloaded = self._psql("SELECT pg_reload_conf()")
        if reloaded.returncode != 0:
            raise StackError(f"postgres: could not reload pg_hba.conf: {reloaded.stderr.strip()}")

    def _ensure_database(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if exists.returncode == 0 and exists.stdout.strip() == "1":
            return
        created = self._psql(f"CREATE DATABASE {DATABASE}")
        # A concurrent `cvloop up` may have created it between the two statements.
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise StackError(f"postgres: could not create database {DATABASE}: {created.stderr.strip()}")

    def probe(self) -> bool:
        try:
            result = self._psql("SELECT 1")
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0 and result.stdout.strip() == "1"


def _as_server_user(argv: Sequence[str]) -> list[str]:
    """argv unchanged, or run as the `postgres` system user when we are root."""
    if not is_root():
        return list(argv)
    return as_user(SYSTEM_USER, argv, init_groups=True)


def _hand_over_to_system_user(workdir: Path) -> None:
    """Give the component's folder to the `postgres` user and let it reach that folder (the data itself
    stays 0700 and owned by `postgres`)."""
    user = pwd.getpwnam(SYSTEM_USER)
    grant_search(workdir)
    if workdir.stat().st_uid == user.pw_uid:
        return  # handed over at an earlier start; the server has owned everything since
    os.chown(workdir, user.pw_uid, user.pw_gid)
    for root, dirs, files in os.walk(workdir):
        for entry in dirs + files:
            os.chown(os.path.join(root, entry), user.pw_uid, user.pw_gid, follow_symlinks=False)
