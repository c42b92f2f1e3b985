"""cvloop's own services in the local stack: each one a `python -m services.<name>` process."""

from __future__ import annotations

import sys

from services.common.settings import LOCAL_HOST, settings_env

from .component import Component
from .process import ensure_port_free, http_status, spawn


class PythonService(Component):
    """A service answering /healthz on its local-stack port; it reads the stack's settings from its env."""

    module: str
    start_timeout = 60.0

    @property
    def port(self) -> int:
        return getattr(self.settings, f"{self.name}_port")

    @property
    def address(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}"

    @property
    def external(self) -> bool:
        return False  # cvloop's own services always run in the local stack

    def install(self) -> None:
        """Installed with the package."""

    def launch(self) -> None:
        ensure_port_free(LOCAL_HOST, self.port, self.name)
        env = settings_env(self.settings) | {"CVLOOP_BIND_HOST": LOCAL_HOST}
        env.pop("CVLOOP_HTTP_PORT", None)  # each service on its own local port
        spawn([sys.executable, "-m", self.module], workdir=self.workdir, env=env)

    def probe(self) -> bool:
        return http_status(f"{self.address}/healthz") == 200


class Serving(PythonService):
    name = "serving"
    module = "services.serving"


class Ingest(PythonService):
    name = "ingest"
    module = "services.ingest"


class Api(PythonService):
    name = "api"
    module = "services.api"


class Scoring(PythonService):
    name = "scoring"
    module = "services.scoring"


class Pipeline(PythonService):
    name = "pipeline"
    module = "services.pipeline"


class JobRunner(PythonService):
    name = "job_runner"
    module = "services.pipeline.runner"
