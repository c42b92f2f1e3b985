"""cvloop's own services in the local stack: each one a `python -m services.<name>` process."""

from __future__ import annotations

import sys

from schemas.local_stack import LOCAL_HOST
from schemas.topics import ConsumerGroup
from services.api.settings import ApiSettings
from services.common.settings import Settings, settings_env
from services.ingest.settings import IngestSettings
from services.pipeline.settings import PipelineSettings
from services.scoring.settings import ScoringSettings
from services.serving.settings import ServingSettings

from .component import Component
from .process import http_status, spawn


class PythonService(Component):
    """A service answering /healthz on its local-stack port; it reads its settings model from its env."""

    module: str
    settings_model: type[Settings]
    start_timeout = 60.0
    consumer_groups: tuple[ConsumerGroup, ...] = ()

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

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def launch(self) -> None:
        env = settings_env(self.settings, self.settings_model) | {"CVLOOP_BIND_HOST": LOCAL_HOST}
        env.pop("CVLOOP_HTTP_PORT", None)  # each service on its own local port
        spawn([sys.executable, "-m", self.module], workdir=self.workdir, env=env)

    def probe(self) -> bool:
        return http_status(f"{self.address}/healthz") == 200


class Serving(PythonService):
    name = "serving"
    module = "services.serving"
    settings_model = ServingSettings


class Ingest(PythonService):
    name = "ingest"
    module = "services.ingest"
    settings_model = IngestSettings
    consumer_groups = (ConsumerGroup.INGEST_RAW, ConsumerGroup.INGEST_PERSISTENCE)


class Api(PythonService):
    name = "api"
    module = "services.api"
    settings_model = ApiSettings


class Scoring(PythonService):
    name = "scoring"
    module = "services.scoring"
    settings_model = ScoringSettings
    consumer_groups = (ConsumerGroup.SCORING,)


class Pipeline(PythonService):
    name = "pipeline"
    module = "services.pipeline"
    settings_model = PipelineSettings
    consumer_groups = (ConsumerGroup.PIPELINE,)


class JobRunner(PythonService):
    name = "job_runner"
    module = "services.pipeline.runner"
    settings_model = PipelineSettings
    consumer_groups = (ConsumerGroup.JOB_RUNNER,)
