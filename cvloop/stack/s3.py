"""The local S3 server: moto's, in memory (MinIO in production, through S3_ENDPOINT)."""

from __future__ import annotations

import importlib.util
import sys

from schemas.local_stack import LOCAL_HOST

from .component import Component
from .process import StackError, ensure_port_free, http_status, spawn


class S3Server(Component):
    name = "s3"
    start_timeout = 20.0

    @property
    def address(self) -> str:
        return self.settings.s3_endpoint

    def install(self) -> None:
        if importlib.util.find_spec("moto.server") is None:
            raise StackError("s3: moto's server is not installed; run `pip install 'moto[server]'`")

    def launch(self) -> None:
        ensure_port_free(LOCAL_HOST, self.settings.s3_port, self.name)
        spawn(
            [sys.executable, "-m", "moto.server", "-H", LOCAL_HOST, "-p", str(self.settings.s3_port)],
            workdir=self.workdir,
        )

    def probe(self) -> bool:
        # moto answers its own dashboard API; another S3 server refuses it unsigned (4xx) but answers.
        status = http_status(f"{self.address}/moto-api/data.json")
        return status is not None and status < 500
